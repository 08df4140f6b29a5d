package runtime

import (
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// WeightBytes is what m's floating-point initializers occupy while a Session
// computes with them: float32 data is read in place from the model, while
// float16 and bfloat16 weights are widened to float32 and double weights
// decoded, their originals staying in the model (float16 takes three times
// its bytes). Callers size memory limits with it.
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
			total += (2 + 4) * n
		case pb.TensorProto_DOUBLE:
			total += (8 + 8) * n
		}
	}
	return total
}
