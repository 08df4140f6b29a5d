package onnx

import (
	"bufio"
	"bytes"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// FuzzLoad feeds mutated models to LoadBytes. It must never panic or allocate
// more than the input justifies; a model it accepts must decode tensor by
// tensor without panicking and survive a write and reload unchanged.
// Crashers found are kept in testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	for _, m := range []*pb.ModelProto{tinyModel(), richModel()} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("not a model"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStreamMatches(t, "fuzz input", b)
		m, err := LoadBytes(b, "fuzz.onnx")
		if err != nil {
			if bytes.IndexByte([]byte(err.Error()), '\n') >= 0 {
				t.Errorf("error has several lines: %q", err)
			}
			return
		}
		mapTensors(m.Proto.ProtoReflect(), "", func(_, _ string, tp *pb.TensorProto) (*pb.TensorProto, error) {
			exerciseTensor(tp)
			return tp, nil
		})
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := writeMessage(w, m.Proto.ProtoReflect(), 256); err != nil {
			t.Fatalf("writeMessage: %v", err)
		}
		w.Flush()
		again, err := LoadBytes(buf.Bytes(), "again.onnx")
		if err != nil {
			t.Fatalf("model accepted once is refused after a write: %v", err)
		}
		if !proto.Equal(again.Proto, m.Proto) {
			t.Fatalf("model changed in a write and reload")
		}
	})
}

// FuzzDecodeTensor feeds mutated TensorProto bytes to the codec. It must
// never panic, and what decodes must encode and decode to the same values.
func FuzzDecodeTensor(f *testing.F) {
	for _, c := range codecCases {
		for _, raw := range []bool{true, false} {
			p := newProto(c.dtype, c.dims)
			if raw {
				p.RawData = c.raw
			} else {
				c.typed(p)
			}
			b, _ := proto.Marshal(p)
			f.Add(b)
		}
	}
	s, _ := proto.Marshal(&pb.TensorProto{DataType: ptr(int32(pb.TensorProto_STRING)), Dims: []int64{2}, StringData: [][]byte{[]byte("a"), nil}})
	f.Add(s)
	big, _ := proto.Marshal(&pb.TensorProto{DataType: ptr(int32(pb.TensorProto_FLOAT)), Dims: []int64{1 << 40}})
	f.Add(big)
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &pb.TensorProto{}
		if proto.Unmarshal(b, p) != nil {
			return
		}
		exerciseTensor(p)
		d, err := DecodeTensor(p)
		if err != nil {
			return
		}
		if h, ok := d.Data.([]uint16); ok && d.DType != pb.TensorProto_UINT16 {
			// Float32s widens raw_data itself: it must agree with the decoder.
			conv := Float16ToFloat32
			if d.DType == pb.TensorProto_BFLOAT16 {
				conv = BFloat16ToFloat32
			}
			f, err := Float32s(p)
			if err != nil {
				t.Fatalf("decodes but Float32s fails: %v", err)
			}
			for i, x := range h {
				if math.Float32bits(f[i]) != math.Float32bits(conv(x)) {
					t.Fatalf("Float32s[%d] = %#08x, want %#08x", i, math.Float32bits(f[i]), math.Float32bits(conv(x)))
				}
			}
		}
		e, err := EncodeTensor(p.GetName(), d)
		if err != nil {
			t.Fatalf("decoded tensor does not encode: %v", err)
		}
		d2, err := DecodeTensor(e)
		if err != nil {
			t.Fatalf("encoded tensor does not decode: %v", err)
		}
		if !sameBits(d.Data, d2.Data) {
			t.Fatalf("values changed in encode/decode: %v then %v", d.Data, d2.Data)
		}
	})
}

// exerciseTensor calls every reader of a tensor; only panics matter.
func exerciseTensor(p *pb.TensorProto) {
	DecodeTensor(p)
	Float32s(p)
	Int64s(p)
	checkTensor(p)
}

func sameBits(a, b any) bool {
	switch x := a.(type) {
	case []float32:
		return bitsEqual(x, b.([]float32), func(v float32) uint64 { return uint64(math.Float32bits(v)) })
	case []float64:
		return bitsEqual(x, b.([]float64), math.Float64bits)
	}
	return sameData(a, b)
}

// bitsEqual reports whether x and y hold the same values bit for bit (NaN
// payloads and signed zeros included).
func bitsEqual[T any](x, y []T, bits func(T) uint64) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if bits(x[i]) != bits(y[i]) {
			return false
		}
	}
	return true
}
