package onnx

import (
	"fmt"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// EncodeLike returns a tensor named name holding data (float32 values) in
// like's element type and shape: float32, float16, bfloat16 (rounded to
// nearest even) or double. Any other type is an error naming like.
func EncodeLike(name string, like *pb.TensorProto, data []float32) (*pb.TensorProto, error) {
	dt := pb.TensorProto_DataType(like.GetDataType())
	dims := append([]int64(nil), like.Dims...)
	switch dt {
	case pb.TensorProto_FLOAT:
		return NewFloat32(name, dims, data), nil
	case pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
		conv := Float32ToFloat16
		if dt == pb.TensorProto_BFLOAT16 {
			conv = Float32ToBFloat16
		}
		h := make([]uint16, len(data))
		for i, f := range data {
			h[i] = conv(f)
		}
		return EncodeTensor(name, &Tensor{DType: dt, Dims: dims, Data: h})
	case pb.TensorProto_DOUBLE:
		d := make([]float64, len(data))
		for i, f := range data {
			d[i] = float64(f)
		}
		return EncodeTensor(name, &Tensor{DType: dt, Dims: dims, Data: d})
	}
	return nil, fmt.Errorf("tensor %q: cannot store data type %s", like.GetName(), DTypeName(dt))
}
