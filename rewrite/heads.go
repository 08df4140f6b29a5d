package rewrite

import (
	"fmt"
	"slices"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// This file is the attention part of the width pass: it removes whole query
// heads of a layer (with grouped-query attention, whole KV groups or the same
// number of query heads from every group): the heads' columns of the q, k and
// v projections (of the packed qkv one), their biases, the o projection's rows
// they feed, and every shape constant the exporter baked in that counts heads
// (the Reshape targets that split and merge heads, repeat_kv's Expand, the
// packed projection's Split sizes) and the declared shapes of the layer's KV
// cache. The head size, and so the attention's scale and the rotary caches,
// do not change. Which projection is which, and the head counts, come from
// discover (Layer.Projections, Layer.Attention).

// AttnHeads says which query heads of one layer's attention stay.
type AttnHeads struct {
	// Layer is the layer's index in the stack given to Width.
	Layer int
	// Keep are the query heads kept, ascending, at least one. With grouped-
	// query attention (G query heads per KV head), every KV group keeps none
	// or the same number of its query heads; a group keeping none is removed
	// with its KV head.
	Keep []int
	// Mean, Down and Offset are as MLPChannels', for the o projection's input
	// features (Heads·HeadDim of them; Down is len(Keep)·HeadDim × out).
	Mean, O, Offset []float32
}

// HeadChange is what Width did to one layer's attention.
type HeadChange struct {
	Before   int `json:"heads_before"`
	After    int `json:"heads_after"`
	KVBefore int `json:"kv_heads_before"`
	KVAfter  int `json:"kv_heads_after"`
	// Compensated, AddedBias and Refit are as WidthChange's, for the o
	// projection.
	Compensated bool `json:"compensated"`
	AddedBias   bool `json:"added_bias,omitempty"`
	Refit       bool `json:"refit,omitempty"`
	// Shapes counts the shape constants rewritten.
	Shapes int `json:"shapes_rewritten"`
}

// AttnProjections returns layer l's attention projections: q, k and v (nil
// when packed) or qkv (nil when not), and o, with its attention shape. It
// fails when the layer has none Width understands: no head counts found, a
// fused attention op (its num_heads attributes are not rewritten), or a
// projection that is not a dense matrix.
func AttnProjections(l *discover.Layer) (q, k, v, qkv, o *discover.Projection, a *discover.Attention, err error) {
	a = l.Attention
	if a == nil {
		return nil, nil, nil, nil, nil, nil, fmt.Errorf("the attention's head counts are not known (no Reshape of q and k into [.., .., heads, head size] with constant sizes)")
	}
	if a.Op != "" {
		return nil, nil, nil, nil, nil, nil, fmt.Errorf("heads of a fused %s are not pruned", a.Op)
	}
	byRole := map[discover.ProjRole]*discover.Projection{}
	for i := range l.Projections {
		p := &l.Projections[i]
		switch p.Role {
		case discover.RoleQ, discover.RoleK, discover.RoleV, discover.RoleQKV, discover.RoleO:
			if byRole[p.Role] != nil {
				return nil, nil, nil, nil, nil, nil, fmt.Errorf("two %s projections", p.Role)
			}
			if err := denseErr(p); err != nil {
				return nil, nil, nil, nil, nil, nil, err
			}
			byRole[p.Role] = p
		}
	}
	q, k, v, qkv, o = byRole[discover.RoleQ], byRole[discover.RoleK], byRole[discover.RoleV], byRole[discover.RoleQKV], byRole[discover.RoleO]
	D := int64(a.HeadDim)
	switch {
	case o == nil || o.In != int64(a.Heads)*D:
		return nil, nil, nil, nil, nil, nil, fmt.Errorf("no o projection reading %d heads of %d", a.Heads, a.HeadDim)
	case qkv != nil && q == nil && k == nil && v == nil:
		if qkv.Out != int64(a.Heads+2*a.KVHeads)*D {
			return nil, nil, nil, nil, nil, nil, fmt.Errorf("the qkv projection has %d outputs for %d+2·%d heads of %d", qkv.Out, a.Heads, a.KVHeads, a.HeadDim)
		}
	case qkv == nil && q != nil && k != nil && v != nil:
		if q.Out != int64(a.Heads)*D || k.Out != int64(a.KVHeads)*D || v.Out != k.Out {
			return nil, nil, nil, nil, nil, nil, fmt.Errorf("the q, k, v projections (%d, %d, %d outputs) do not hold %d and %d heads of %d", q.Out, k.Out, v.Out, a.Heads, a.KVHeads, a.HeadDim)
		}
	default:
		return nil, nil, nil, nil, nil, nil, fmt.Errorf("no q, k and v projections found")
	}
	return q, k, v, qkv, o, a, nil
}

// HeadParams is the number of parameters one query head of layer l holds
// when its whole KV group goes with it (as many query heads as KV heads
// removed): its q columns, its share of the k and v columns, the o rows, and
// the bias entries.
func HeadParams(l *discover.Layer) (int64, error) {
	q, k, _, qkv, o, a, err := AttnProjections(l)
	if err != nil {
		return 0, err
	}
	D := int64(a.HeadDim)
	G := int64(a.Heads / a.KVHeads)
	var in int64 // the model's width, which the q/k/v projections read
	if qkv != nil {
		in = qkv.In
	} else {
		in = q.In
	}
	n := D*in + D*o.Out // q columns, o rows
	kv := 2 * D * in    // k and v columns of the group
	bias := int64(0)
	for _, p := range []*discover.Projection{q, k, qkv} {
		if p != nil && p.Bias >= 0 {
			bias = 1
		}
	}
	n += D * bias
	kv += 2 * D * bias
	// Per query head: its own, and 1/G of its group's k and v.
	return n + kv/G, nil
}

// keptHeads checks keep against a and returns the KV groups kept and the
// query heads each keeps.
func keptHeads(a *discover.Attention, keep []int) (groups []int, perGroup int, err error) {
	if len(keep) == 0 {
		return nil, 0, fmt.Errorf("keeps no head")
	}
	G := a.Heads / a.KVHeads
	count := map[int]int{}
	for i, h := range keep {
		if h < 0 || h >= a.Heads || (i > 0 && h <= keep[i-1]) {
			return nil, 0, fmt.Errorf("kept heads must be ascending and in [0, %d)", a.Heads)
		}
		if count[h/G] == 0 {
			groups = append(groups, h/G)
		}
		count[h/G]++
	}
	perGroup = count[groups[0]]
	for _, g := range groups {
		if count[g] != perGroup {
			return nil, 0, fmt.Errorf("KV groups keep %d and %d query heads: every group kept must keep the same number", perGroup, count[g])
		}
	}
	return groups, perGroup, nil
}

// HeadFeatures lists the features of heads (each of size D) in a [.., H·D]
// value: the o projection's input features they feed.
func HeadFeatures(heads []int, D int) []int { return features(heads, D, 0) }

// features lists the features of heads (each of size D), offset by base.
func features(heads []int, D, base int) []int {
	var f []int
	for _, h := range heads {
		for j := 0; j < D; j++ {
			f = append(f, base+h*D+j)
		}
	}
	return f
}

func (w *widther) heads(c AttnHeads) (HeadChange, error) {
	l := &w.s.Layers[c.Layer]
	q, k, v, qkv, o, a, err := AttnProjections(l)
	if err != nil {
		return HeadChange{}, err
	}
	ch := HeadChange{Before: a.Heads, KVBefore: a.KVHeads}
	groups, perGroup, err := keptHeads(a, c.Keep)
	if err != nil {
		return ch, err
	}
	ch.After, ch.KVAfter = len(c.Keep), len(groups)
	D := a.HeadDim
	qf := features(c.Keep, D, 0)
	if err := checkInputs(int(o.In), int(o.Out), len(qf), c.Mean, c.O, c.Offset); err != nil {
		return ch, err
	}
	if len(c.Keep) == a.Heads {
		return ch, nil
	}
	kvf := features(groups, D, 0)
	if qkv != nil {
		keep := slices.Concat(qf, features(groups, D, a.Heads*D), features(groups, D, (a.Heads+a.KVHeads)*D))
		if err := w.slice(l, qkv, keep, false); err != nil {
			return ch, err
		}
	} else {
		for _, x := range []struct {
			p    *discover.Projection
			keep []int
		}{{q, qf}, {k, kvf}, {v, kvf}} {
			if err := w.slice(l, x.p, x.keep, false); err != nil {
				return ch, err
			}
		}
	}
	if ch.Refit, ch.Compensated, ch.AddedBias, err = w.inputs(l, o, qf, c.Mean, c.O, c.Offset); err != nil {
		return ch, err
	}
	hs := headShapes{a: a, newHq: int64(len(c.Keep)), newHkv: int64(len(groups)), newG: int64(perGroup)}
	var starts []branchValue
	if qkv != nil {
		starts = append(starts, branchValue{w.g.Value(qkv.Output), 'p', true})
	} else {
		starts = append(starts, branchValue{w.g.Value(q.Output), 'q', true}, branchValue{w.g.Value(k.Output), 'k', true}, branchValue{w.g.Value(v.Output), 'v', true})
	}
	if ch.Shapes, err = w.headShapes(l, starts, w.byIndex[o.Node], hs); err != nil {
		return ch, err
	}
	if err := w.cacheShapes(l, a, hs.newHkv); err != nil {
		return ch, err
	}
	return ch, nil
}

// headShapes are a layer's old and new head counts.
type headShapes struct {
	a                   *discover.Attention
	newHq, newHkv, newG int64
}

// branchValue is a value on the way from a projection to the attention:
// branch q, k, v or p (packed qkv), flat ([.., features]) before the Reshape
// splitting it into heads.
type branchValue struct {
	v      *graph.Value
	branch byte
	flat   bool
}

// headShapes follows the values from the q, k and v projections to the o
// projection (stop) in layer l and rewrites the shape constants that count
// heads; it drops the declared types of the values on the way (graph inputs
// and outputs: cacheShapes). It returns the number of constants rewritten.
func (w *widther) headShapes(l *discover.Layer, starts []branchValue, stop *graph.Node, hs headShapes) (int, error) {
	inLayer := map[*graph.Node]bool{}
	for _, i := range l.Nodes {
		inLayer[w.byIndex[i]] = true
	}
	a := hs.a
	D, Hq, Hkv := int64(a.HeadDim), int64(a.Heads), int64(a.KVHeads)
	heads := func(b byte) (old, new int64) {
		if b == 'q' {
			return Hq, hs.newHq
		}
		return Hkv, hs.newHkv
	}
	seen := map[*graph.Value]bool{}
	done := map[*graph.Node]bool{}
	count := 0
	queue := slices.Clone(starts)
	for len(queue) > 0 && len(seen) < 512 {
		cur := queue[0]
		queue = queue[1:]
		if cur.v == nil || seen[cur.v] {
			continue
		}
		seen[cur.v] = true
		if !cur.v.IsOutput() && !cur.v.Input {
			cur.v.Info = nil // its head count changed
		}
		for _, n := range slices.Clone(cur.v.Consumers) {
			if n == stop || !(inLayer[n] || n.Index < 0) || n.Op == "Shape" || n.Op == "Size" {
				continue
			}
			next := cur
			if !done[n] && len(n.Inputs) > 1 && n.Inputs[0] == cur.v {
				set, flat, err := headRule(n, cur, hs, heads, D)
				if err != nil {
					return count, fmt.Errorf("%s: %w", n.Name, err)
				}
				if set != nil {
					done[n] = true
					count++
					if n.Op == "Split" {
						if err := w.splitSizes(n, set); err != nil {
							return count, err
						}
						for i, b := range []byte{'q', 'k', 'v'} {
							queue = append(queue, branchValue{n.Outputs[i], b, true})
						}
						continue
					}
					sv, _ := graph.ParseShapeVector(n.Inputs[1])
					if err := w.setShape(n, 1, sv, set); err != nil {
						return count, err
					}
				}
				next.flat = flat
			}
			for _, out := range n.Outputs {
				next.v = out
				queue = append(queue, next)
			}
		}
	}
	return count, nil
}

// headRule says which entries of node n's shape input (n reads cur at input
// 0) count heads and their new values, nil when none; and whether n's result
// is still flat.
func headRule(n *graph.Node, cur branchValue, hs headShapes, heads func(byte) (int64, int64), D int64) (map[int]int64, bool, error) {
	a := hs.a
	Hq, Hkv, G := int64(a.Heads), int64(a.KVHeads), int64(a.Heads/a.KVHeads)
	if n.Op == "Split" {
		if cur.branch != 'p' || !cur.flat || len(n.Outputs) != 3 {
			return nil, cur.flat, nil
		}
		sizes := splitOf(n)
		if sizes != nil && !slices.Equal(sizes, []int64{Hq * D, Hkv * D, Hkv * D}) {
			return nil, false, fmt.Errorf("split sizes %v, not q, k, v of %d, %d, %d heads of %d", sizes, Hq, Hkv, Hkv, D)
		}
		return map[int]int64{0: hs.newHq * D, 1: hs.newHkv * D, 2: hs.newHkv * D}, true, nil
	}
	if n.Op != "Reshape" && n.Op != "Expand" {
		return nil, cur.flat, nil
	}
	sv, ok := graph.ParseShapeVector(n.Inputs[1])
	if !ok {
		return nil, cur.flat, nil
	}
	e, known := sv.Entries, sv.Known
	is := func(i int, x int64) bool { return i < len(e) && known[i] && e[i] == x }
	switch r := len(e); {
	case n.Op == "Expand":
		// repeat_kv: [B, Hkv, G, S, D].
		if !cur.flat && r == 5 && is(1, Hkv) && is(2, G) && is(4, D) {
			return map[int]int64{1: hs.newHkv, 2: hs.newG}, false, nil
		}
	case cur.flat && r == 4 && is(3, D) && known[2]:
		// Split into heads: [B, T, H, D].
		old, nw := heads(cur.branch)
		if e[2] != old {
			return nil, false, fmt.Errorf("splits %d heads of %d, the layer has %d", e[2], D, old)
		}
		return map[int]int64{2: nw}, false, nil
	case cur.flat && r == 3 && cur.branch == 'p' && is(2, (Hq+2*Hkv)*D):
		return map[int]int64{2: (hs.newHq + 2*hs.newHkv) * D}, true, nil
	case !cur.flat && r == 4 && is(3, D) && is(1, Hq) && !is(2, Hq):
		// repeat_kv's merge: [B, Hq, S, D].
		return map[int]int64{1: hs.newHq}, false, nil
	case !cur.flat && r == 3 && is(2, Hq*D):
		// Heads merged for o: [B, T, Hq·D].
		return map[int]int64{2: hs.newHq * D}, true, nil
	}
	return nil, cur.flat, nil
}

// splitOf are a Split's sizes (input 1, or the split attribute before opset
// 13), nil when it splits evenly.
func splitOf(n *graph.Node) []int64 {
	if len(n.Inputs) > 1 && n.Inputs[1] != nil {
		if sv, ok := graph.ParseShapeVector(n.Inputs[1]); ok && sv.Concat == nil {
			return sv.Entries
		}
		return nil
	}
	return n.AttrInts("split")
}

// splitSizes gives Split n the sizes set (every output's).
func (w *widther) splitSizes(n *graph.Node, set map[int]int64) error {
	sizes := make([]int64, len(n.Outputs))
	for i := range sizes {
		sizes[i] = set[i]
	}
	if len(n.Inputs) > 1 && n.Inputs[1] != nil {
		v, err := w.constInt64s(n.Inputs[1].Name, sizes)
		if err != nil {
			return err
		}
		w.g.SetInput(n, 1, v)
		return nil
	}
	if n.Attr("split") == nil {
		// An even split stays even: the three parts shrink alike only
		// without grouped-query attention, which AttnProjections checked.
		return nil
	}
	attrs := slices.DeleteFunc(slices.Clone(n.Attrs), func(a *pb.AttributeProto) bool { return a.GetName() == "split" })
	n.Attrs = append(attrs, onnx.AttrInts("split", sizes...))
	return nil
}

// cacheShapes sets the declared KV-head dimension of layer l's KV-cache
// inputs and outputs ([batch, KV heads, sequence, head size]) to newHkv.
func (w *widther) cacheShapes(l *discover.Layer, a *discover.Attention, newHkv int64) error {
	if newHkv == int64(a.KVHeads) {
		return nil
	}
	for _, name := range slices.Concat(l.Past, l.Present) {
		v := w.g.Value(name)
		if v == nil || v.Info == nil {
			continue
		}
		dims := v.Info.GetType().GetTensorType().GetShape().GetDim()
		if len(dims) != 4 {
			continue
		}
		if dims[1].GetDimValue() != int64(a.KVHeads) || (dims[3].GetDimValue() != 0 && dims[3].GetDimValue() != int64(a.HeadDim)) {
			return fmt.Errorf("KV cache %q is declared %v, not [batch, %d heads, sequence, %d]", name, dims, a.KVHeads, a.HeadDim)
		}
		info := proto.Clone(v.Info).(*pb.ValueInfoProto)
		info.Type.GetTensorType().Shape.Dim[1] = &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: newHkv}}
		v.Info = info
	}
	return nil
}
