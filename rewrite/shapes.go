package rewrite

import (
	"maps"
	"slices"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// This file rewrites the shape constants exporters bake in (Reshape and
// Expand targets, Split sizes): entries of a constant vector, or of the
// constant parts of the Concat building it, get new values in new constants,
// so that a constant or a Concat another node shares is never changed.

// reshapeTarget rewrites the old width F to newF in the last entry of
// Reshape n's target when a constant says it there.
func (w *widther) reshapeTarget(n *graph.Node, F, newF int64) (bool, error) {
	sv, ok := graph.ParseShapeVector(n.Inputs[1])
	if !ok {
		sv, ok = lastPart(n.Inputs[1])
	}
	if !ok {
		return false, nil
	}
	last := len(sv.Entries) - 1
	if last < 0 || !sv.Known[last] || sv.Entries[last] != F {
		return false, nil
	}
	return true, w.setShape(n, 1, sv, map[int]int64{last: newF})
}

// lastPart reads the last input of the Concat building shape, when it is a
// constant, as the only part of a shape vector (the parts before it may have
// any length: Concat(Slice(Shape(x)), [F])).
func lastPart(shape *graph.Value) (*graph.ShapeVector, bool) {
	cat := shape.Producer
	if cat == nil || cat.Op != "Concat" || len(cat.Inputs) == 0 {
		return nil, false
	}
	p := len(cat.Inputs) - 1
	whole, ok := graph.ParseShapeVector(cat.Inputs[p])
	if !ok || whole.Concat != nil {
		return nil, false
	}
	sv := &graph.ShapeVector{Entries: whole.Entries, Known: whole.Known, Concat: cat, Part: make([]int, len(whole.Entries))}
	for i := range sv.Part {
		sv.Part[i] = p
	}
	return sv, true
}

// setShape makes input in of n (read as sv) hold sv's entries with those of
// set replaced.
func (w *widther) setShape(n *graph.Node, in int, sv *graph.ShapeVector, set map[int]int64) error {
	shape := n.Inputs[in]
	if sv.Concat == nil {
		vals := append([]int64(nil), sv.Entries...)
		for i, x := range set {
			vals[i] = x
		}
		v, err := w.constInt64s(shape.Name, vals)
		if err != nil {
			return err
		}
		w.g.SetInput(n, in, v)
		return nil
	}
	cat := sv.Concat
	if !onlyReader(shape, n) {
		name := cat.Name
		if name != "" {
			name = w.g.UniqueName(name + "_w")
		}
		c, err := w.g.CloneNode(cat, name, []string{w.g.UniqueName(shape.Name + "_w")})
		if err != nil {
			return err
		}
		w.g.SetInput(n, in, c.Outputs[0])
		cat = c
	}
	// The parts changed, each rebuilt once with all its new entries.
	parts := map[int][]int64{}
	for i, x := range set {
		p := sv.Part[i]
		if _, ok := parts[p]; !ok {
			for j := range sv.Entries {
				if sv.Part[j] == p {
					parts[p] = append(parts[p], sv.Entries[j])
				}
			}
		}
		first := 0
		for first < len(sv.Part) && sv.Part[first] != p {
			first++
		}
		parts[p][i-first] = x
	}
	// In part order: the new constants' names and places in the written
	// model must not depend on map order.
	for _, p := range slices.Sorted(maps.Keys(parts)) {
		v, err := w.constInt64s(cat.Inputs[p].Name, parts[p])
		if err != nil {
			return err
		}
		w.g.SetInput(cat, p, v)
	}
	return nil
}

// constInt64s holds vals in a new constant like the value named base: an
// initializer, or a Constant node when base is one's output (so a layer keeps
// the ops of the others). A rank-0 base gives a rank-0 constant.
func (w *widther) constInt64s(base string, vals []int64) (*graph.Value, error) {
	name := w.g.UniqueName(base + "_w")
	dims := []int64{int64(len(vals))}
	if t := graph.Constant(w.g.Value(base)); t != nil && len(t.Dims) == 0 && len(vals) == 1 {
		dims = nil
	}
	t, err := onnx.EncodeTensor(name, &onnx.Tensor{DType: pb.TensorProto_INT64, Dims: dims, Data: vals})
	if err != nil {
		return nil, err
	}
	if v := w.g.Value(base); v != nil && v.Producer != nil && v.Producer.Op == "Constant" {
		t.Name = nil
		attr := onnx.AttrTensor("value", t)
		nodeName := v.Producer.Name
		if nodeName != "" {
			nodeName = w.g.UniqueName(nodeName + "_w")
		}
		n, err := w.g.AddNode("Constant", nodeName, nil, []string{name}, attr)
		if err != nil {
			return nil, err
		}
		return n.Outputs[0], nil
	}
	return w.g.AddInitializer(t)
}
