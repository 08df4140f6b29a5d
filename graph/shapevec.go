package graph

import (
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// ShapeVector is a shape operand (a Reshape or Expand target) read entry by
// entry: a constant int64 vector, or a Concat of one-entry parts as exporters
// build them (constants, and computed sizes such as Unsqueeze(Gather(Shape))).
type ShapeVector struct {
	// Entries are the values, Known whether each is a constant.
	Entries []int64
	Known   []bool
	// Concat is the node building the vector, nil for a constant vector;
	// Part[i] is the Concat input holding entry i.
	Concat *Node
	Part   []int
}

// ParseShapeVector reads v as a shape vector; ok is false when its entries
// cannot be told apart (a Concat part of unknown length).
func ParseShapeVector(v *Value) (sv *ShapeVector, ok bool) {
	if vals, ok := constInt64s(v); ok {
		sv := &ShapeVector{Entries: vals, Known: make([]bool, len(vals))}
		for i := range sv.Known {
			sv.Known[i] = true
		}
		return sv, true
	}
	if v == nil || v.Producer == nil || v.Producer.Op != "Concat" || v.Producer.Domain != "" {
		return nil, false
	}
	cat := v.Producer
	sv = &ShapeVector{Concat: cat}
	for i, in := range cat.Inputs {
		if vals, ok := constInt64s(in); ok {
			for _, x := range vals {
				sv.Entries, sv.Known, sv.Part = append(sv.Entries, x), append(sv.Known, true), append(sv.Part, i)
			}
			continue
		}
		// A computed part is one entry when it unsqueezes a scalar size.
		if in == nil || in.Producer == nil || in.Producer.Op != "Unsqueeze" {
			return nil, false
		}
		sv.Entries, sv.Known, sv.Part = append(sv.Entries, 0), append(sv.Known, false), append(sv.Part, i)
	}
	return sv, true
}

// constInt64s decodes a constant int64 tensor of rank 0 or 1.
func constInt64s(v *Value) ([]int64, bool) {
	t := Constant(v)
	if t == nil || pb.TensorProto_DataType(t.GetDataType()) != pb.TensorProto_INT64 || len(t.Dims) > 1 {
		return nil, false
	}
	d, err := onnx.DecodeTensor(t)
	if err != nil {
		return nil, false
	}
	vals, ok := d.Data.([]int64)
	if !ok {
		return nil, false
	}
	return append([]int64(nil), vals...), true
}
