package runtime

import (
	"math"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// TestHalfFromProto: a float16/bfloat16 initializer is read from aligned
// raw_data in place, from unaligned raw_data or int32_data as a copy, and
// widens to the same values every way; a short raw_data is an error.
func TestHalfFromProto(t *testing.T) {
	bits := []uint16{0x3e00, 0xc000, 0x0001, 0x7c00} // 1.5, -2, smallest subnormal, +Inf
	want := []float32{1.5, -2, 5.9604645e-08, float32(math.Inf(1))}
	rawOf := func(shift int) []byte {
		b := make([]byte, 2*len(bits)+shift)[shift:]
		for i, h := range bits {
			b[2*i], b[2*i+1] = byte(h), byte(h>>8)
		}
		return b
	}
	i32 := make([]int32, len(bits))
	for i, h := range bits {
		i32[i] = int32(h)
	}
	tests := []struct {
		name    string
		tp      *pb.TensorProto
		aliased bool
	}{
		{"raw aligned", &pb.TensorProto{RawData: rawOf(0)}, true},
		{"raw unaligned", &pb.TensorProto{RawData: rawOf(1)}, false},
		{"int32_data", &pb.TensorProto{Int32Data: i32}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.tp.Name = proto.String("w")
			tc.tp.DataType = proto.Int32(int32(pb.TensorProto_FLOAT16))
			tc.tp.Dims = []int64{2, 2}
			x, err := tensorFromProto(tc.tp)
			if err != nil {
				t.Fatal(err)
			}
			if x.dtype != Float16 {
				t.Fatalf("dtype %v, want float16", x.dtype)
			}
			h := x.half()
			if aliased := tc.tp.RawData != nil && &h.bits[0] == (*uint16)(ptrOf(tc.tp.RawData)); aliased != tc.aliased {
				t.Errorf("aliases raw_data: %v, want %v", aliased, tc.aliased)
			}
			got := x.widened().Float32Data()
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("value %d = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
	short := &pb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(int32(pb.TensorProto_BFLOAT16)), Dims: []int64{3}, RawData: []byte{1, 2}}
	if _, err := tensorFromProto(short); err == nil {
		t.Error("3 bfloat16 values in 2 bytes of raw_data: no error")
	}
}

func ptrOf(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
