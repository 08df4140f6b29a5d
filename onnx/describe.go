package onnx

import (
	"strconv"
	"strings"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Value describes a graph input or output for people and scripts.
type Value struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	// Shape has one entry per axis; nil when the rank is unknown.
	Shape []Dim `json:"shape"`
}

// Dim is one axis of a Value: a number, a symbolic name, or unknown. In JSON
// it is a number, a string or null.
type Dim struct {
	Value int64
	Param string
	Known bool
}

// DescribeValue summarises a ValueInfoProto: element type and shape.
func DescribeValue(v *pb.ValueInfoProto) Value {
	out := Value{Name: v.GetName()}
	t := v.GetType()
	var shape *pb.TensorShapeProto
	switch {
	case t.GetTensorType() != nil:
		out.DType = DTypeName(pb.TensorProto_DataType(t.GetTensorType().GetElemType()))
		shape = t.GetTensorType().GetShape()
	case t.GetSparseTensorType() != nil:
		out.DType = "sparse " + DTypeName(pb.TensorProto_DataType(t.GetSparseTensorType().GetElemType()))
		shape = t.GetSparseTensorType().GetShape()
	case t.GetSequenceType() != nil:
		out.DType = "sequence"
	case t.GetMapType() != nil:
		out.DType = "map"
	case t.GetOptionalType() != nil:
		out.DType = "optional"
	default:
		out.DType = "unknown"
	}
	if shape != nil {
		out.Shape = []Dim{}
		for _, d := range shape.GetDim() {
			switch x := d.GetValue().(type) {
			case *pb.TensorShapeProto_Dimension_DimValue:
				out.Shape = append(out.Shape, Dim{Value: x.DimValue, Known: true})
			case *pb.TensorShapeProto_Dimension_DimParam:
				out.Shape = append(out.Shape, Dim{Param: x.DimParam})
			default:
				out.Shape = append(out.Shape, Dim{})
			}
		}
	}
	return out
}

// ShapeString writes the shape as "[batch_size, 128]", or "(rank unknown)".
func (v Value) ShapeString() string {
	if v.Shape == nil {
		return "(rank unknown)"
	}
	s := make([]string, len(v.Shape))
	for i, d := range v.Shape {
		s[i] = d.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// MarshalJSON writes a number, a string or null.
func (d Dim) MarshalJSON() ([]byte, error) {
	switch {
	case d.Param != "":
		return []byte(strconv.Quote(d.Param)), nil
	case d.Known:
		return []byte(strconv.FormatInt(d.Value, 10)), nil
	}
	return []byte("null"), nil
}

// String writes the axis as a number, a name or "?".
func (d Dim) String() string {
	switch {
	case d.Param != "":
		return d.Param
	case d.Known:
		return strconv.FormatInt(d.Value, 10)
	}
	return "?"
}
