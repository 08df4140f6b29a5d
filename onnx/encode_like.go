package onnx

import (
	"fmt"

	"github.com/onnxslm/onnxslm/internal/half"
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
		// What EncodeTensor makes of the narrowed []uint16, with the values
		// narrowed straight into raw_data.
		n, err := NumElements(dims)
		if err == nil && int64(len(data)) != n {
			err = fmt.Errorf("%d values, dims %s need %d", len(data), dimsString(dims), n)
		}
		if err != nil {
			return nil, fmt.Errorf("encode tensor %q: %w", name, err)
		}
		raw := make([]byte, 2*len(data))
		if dt == pb.TensorProto_BFLOAT16 {
			half.NarrowBF16(raw, data)
		} else {
			half.Narrow(raw, data)
		}
		return &pb.TensorProto{Name: &name, DataType: ptr(int32(dt)), Dims: append([]int64{}, dims...), RawData: raw}, nil
	case pb.TensorProto_DOUBLE:
		d := make([]float64, len(data))
		for i, f := range data {
			d[i] = float64(f)
		}
		return EncodeTensor(name, &Tensor{DType: dt, Dims: dims, Data: d})
	}
	return nil, fmt.Errorf("tensor %q: cannot store data type %s", like.GetName(), DTypeName(dt))
}
