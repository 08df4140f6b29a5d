package runtime

import (
	"testing"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// TestFromONNX: the dtype table maps every ONNX element type the runtime
// reads, 16-bit floats to Float32, and no other.
func TestFromONNX(t *testing.T) {
	want := map[pb.TensorProto_DataType]DType{
		pb.TensorProto_FLOAT: Float32, pb.TensorProto_FLOAT16: Float32, pb.TensorProto_BFLOAT16: Float32,
		pb.TensorProto_DOUBLE: Float64, pb.TensorProto_INT64: Int64, pb.TensorProto_INT32: Int32,
		pb.TensorProto_INT8: Int8, pb.TensorProto_UINT8: Uint8, pb.TensorProto_BOOL: Bool,
	}
	for v := range pb.TensorProto_DataType_name {
		ot := pb.TensorProto_DataType(v)
		got, ok := fromONNX(ot)
		if w, known := want[ot]; ok != known || got != w {
			t.Errorf("fromONNX(%v) = %v, %v, want %v, %v", ot, got, ok, w, known)
		}
	}
}
