package runtime

import (
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// WeightBytes is what m's floating-point initializers occupy while a Session
// computes with them: float32, float16 and bfloat16 data are read in place
// from the model (16-bit weights are widened only block by block where they
// are used, see half.go), while double weights are decoded to float64 beside
// their originals. Callers size memory limits with it.
func WeightBytes(m *pb.ModelProto) int64 {
	var total int64
	for _, t := range m.GetGraph().GetInitializer() {
		n, err := onnx.NumElements(t.GetDims())
		if err != nil {
			continue
		}
		switch pb.TensorProto_DataType(t.GetDataType()) {
		case pb.TensorProto_FLOAT:
			total += 4 * n
		case pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
			total += 2 * n
		case pb.TensorProto_DOUBLE:
			total += (8 + 8) * n
		}
	}
	return total
}
