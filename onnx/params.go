package onnx

import "github.com/onnxslm/onnxslm/onnx/pb"

// Parameters counts the elements and bytes of the floating-point initializers
// of m's main graph: what people call a model's parameters. Tensors with
// invalid dims are skipped (Load has already refused them).
func Parameters(m *pb.ModelProto) (elements, bytes int64) {
	for _, t := range m.GetGraph().GetInitializer() {
		dt := pb.TensorProto_DataType(t.GetDataType())
		switch dt {
		case pb.TensorProto_FLOAT, pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16, pb.TensorProto_DOUBLE:
			n, err := NumElements(t.GetDims())
			if err != nil {
				continue
			}
			size, _ := ElemSize(dt)
			elements += n
			bytes += n * int64(size)
		}
	}
	return elements, bytes
}
