package graph

import (
	"encoding/binary"
	"math"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// NumElements returns the product of dims (1 for a scalar).
func NumElements(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return n
}

// elemSize returns the byte size of one element of a fixed-width type, or 0.
func elemSize(dt pb.TensorProto_DataType) int {
	switch dt {
	case pb.TensorProto_FLOAT, pb.TensorProto_INT32, pb.TensorProto_UINT32:
		return 4
	case pb.TensorProto_DOUBLE, pb.TensorProto_INT64, pb.TensorProto_UINT64, pb.TensorProto_COMPLEX64:
		return 8
	case pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16, pb.TensorProto_INT16, pb.TensorProto_UINT16:
		return 2
	case pb.TensorProto_INT8, pb.TensorProto_UINT8, pb.TensorProto_BOOL:
		return 1
	case pb.TensorProto_COMPLEX128:
		return 16
	}
	return 0
}

// IsExternal reports whether t's data lives in an external file.
func IsExternal(t *pb.TensorProto) bool {
	return t.GetDataLocation() == pb.TensorProto_EXTERNAL
}

// TensorBytes returns the little-endian bytes of t's data (raw_data as is, typed
// fields encoded), or ok=false for external data, strings or an unknown type. The
// result may alias t.RawData: never modify it.
func TensorBytes(t *pb.TensorProto) (b []byte, ok bool) {
	if IsExternal(t) {
		return nil, false
	}
	dt := pb.TensorProto_DataType(t.GetDataType())
	size := elemSize(dt)
	if size == 0 {
		return nil, false
	}
	if t.RawData != nil {
		return t.RawData, true
	}
	n := NumElements(t.GetDims())
	out := make([]byte, 0, n*int64(size))
	switch dt {
	case pb.TensorProto_FLOAT, pb.TensorProto_COMPLEX64:
		for _, f := range t.GetFloatData() {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(f))
		}
	case pb.TensorProto_DOUBLE, pb.TensorProto_COMPLEX128:
		for _, f := range t.GetDoubleData() {
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(f))
		}
	case pb.TensorProto_INT64:
		for _, x := range t.GetInt64Data() {
			out = binary.LittleEndian.AppendUint64(out, uint64(x))
		}
	case pb.TensorProto_UINT64:
		for _, x := range t.GetUint64Data() {
			out = binary.LittleEndian.AppendUint64(out, x)
		}
	case pb.TensorProto_UINT32:
		for _, x := range t.GetUint64Data() {
			out = binary.LittleEndian.AppendUint32(out, uint32(x))
		}
	default: // int32-packed types
		for _, x := range t.GetInt32Data() {
			switch size {
			case 4:
				out = binary.LittleEndian.AppendUint32(out, uint32(x))
			case 2:
				out = binary.LittleEndian.AppendUint16(out, uint16(x))
			case 1:
				out = append(out, byte(x))
			}
		}
	}
	return out, true
}

// Constant returns the tensor that v holds when it is an initializer (not a graph
// input) or the output of a Constant node with a `value` attribute; nil otherwise.
func Constant(v *Value) *pb.TensorProto {
	if v == nil {
		return nil
	}
	if v.IsConst() {
		return v.Init
	}
	if p := v.Producer; p != nil && p.Op == "Constant" && p.Domain == "" {
		if a := p.Attr("value"); a != nil && a.T != nil {
			return a.T
		}
	}
	return nil
}
