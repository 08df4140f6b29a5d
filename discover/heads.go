package discover

import (
	"github.com/onnxslm/onnxslm/graph"
)

// This file finds how a layer's attention splits into heads: the query and
// key/value head counts and the head size, read from the Reshape targets that
// split the q and k projections' results into heads (or from a fused attention
// op's attributes). Width pruning of heads (rewrite.Width) needs them.

// Attention is a layer's attention shape.
type Attention struct {
	// Heads and KVHeads are the numbers of query and key/value heads (equal
	// without grouped-query attention); HeadDim the size of a head.
	Heads   int `json:"heads"`
	KVHeads int `json:"kv_heads"`
	HeadDim int `json:"head_dim"`
	// Op is the fused attention op computing it (com.microsoft
	// GroupQueryAttention, MultiHeadAttention, ...), empty when the attention
	// is built from MatMul and Softmax and the heads from Reshapes.
	Op string `json:"op,omitempty"`
}

// attention finds layer k's attention shape from its projections, nil when the
// graph does not say it (no q and k projections, or no Reshape splitting them
// into heads of one size).
func (l *layering) attention(k int, projs []Projection) *Attention {
	var q, kp, qkv *Projection
	for i := range projs {
		switch projs[i].Role {
		case RoleQ:
			q = &projs[i]
		case RoleK:
			kp = &projs[i]
		case RoleQKV:
			qkv = &projs[i]
		}
	}
	for _, x := range l.nodes[k] {
		if !isFusedAttention(x) {
			continue
		}
		a := &Attention{Op: x.Op, Heads: int(x.AttrInt("num_heads", 0))}
		a.KVHeads = int(x.AttrInt("kv_num_heads", int64(a.Heads)))
		switch {
		case a.Heads <= 0 || a.KVHeads <= 0:
			return nil
		case q != nil && q.Out%int64(a.Heads) == 0:
			a.HeadDim = int(q.Out) / a.Heads
		case qkv != nil && qkv.Out%int64(a.Heads+2*a.KVHeads) == 0:
			a.HeadDim = int(qkv.Out) / (a.Heads + 2*a.KVHeads)
		default:
			return nil
		}
		return a
	}
	var qOut, kOut *graph.Value
	var qWidth, kWidth int64
	switch {
	case q != nil && kp != nil:
		qOut, kOut, qWidth, kWidth = l.flow.a.g.Value(q.Output), l.flow.a.g.Value(kp.Output), q.Out, kp.Out
	case qkv != nil:
		split := l.forward(k, l.flow.a.g.Value(qkv.Output), func(x *graph.Node) bool { return x.Op == "Split" && len(x.Outputs) == 3 })
		if split == nil {
			return nil
		}
		sizes := splitSizes(split)
		if sizes == nil {
			sizes = []int64{qkv.Out / 3, qkv.Out / 3, qkv.Out / 3}
		}
		if len(sizes) != 3 || sizes[0]+sizes[1]+sizes[2] != qkv.Out {
			return nil
		}
		qOut, kOut, qWidth, kWidth = split.Outputs[0], split.Outputs[1], sizes[0], sizes[1]
	default:
		return nil
	}
	hq, dq := l.splitHeads(k, qOut, qWidth)
	hk, dk := l.splitHeads(k, kOut, kWidth)
	if hq <= 0 || hk <= 0 || dq != dk || hq%hk != 0 {
		return nil
	}
	return &Attention{Heads: int(hq), KVHeads: int(hk), HeadDim: int(dq)}
}

// splitHeads finds the Reshape of layer k that splits v (width features) into
// heads, [.., .., H, D] with H·D = width, and returns H and D (0, 0 if none).
func (l *layering) splitHeads(k int, v *graph.Value, width int64) (int64, int64) {
	var h, d int64
	l.forward(k, v, func(x *graph.Node) bool {
		if x.Op != "Reshape" || len(x.Inputs) < 2 {
			return false
		}
		sv, ok := graph.ParseShapeVector(x.Inputs[1])
		if !ok || len(sv.Entries) != 4 || !sv.Known[2] || !sv.Known[3] || sv.Entries[2]*sv.Entries[3] != width {
			return false
		}
		h, d = sv.Entries[2], sv.Entries[3]
		return true
	})
	return h, d
}

// forward returns the first node of layer k, breadth first within 4 nodes of
// v along data inputs (not into Shape or Size), that match accepts.
func (l *layering) forward(k int, v *graph.Value, match func(*graph.Node) bool) *graph.Node {
	if v == nil {
		return nil
	}
	level := []*graph.Value{v}
	seen := map[*graph.Node]bool{}
	for depth := 0; depth < 4 && len(level) > 0; depth++ {
		var next []*graph.Value
		for _, cur := range level {
			for _, x := range cur.Consumers {
				if seen[x] || l.owner[x] != k || x.Op == "Shape" || x.Op == "Size" || len(x.Inputs) == 0 || x.Inputs[0] != cur {
					continue
				}
				seen[x] = true
				if match(x) {
					return x
				}
				for _, o := range x.Outputs {
					if o != nil {
						next = append(next, o)
					}
				}
			}
		}
		level = next
	}
	return nil
}

// splitSizes are a Split's sizes (input 1, or the split attribute before
// opset 13), nil when it splits evenly.
func splitSizes(x *graph.Node) []int64 {
	if len(x.Inputs) > 1 && x.Inputs[1] != nil {
		sv, ok := graph.ParseShapeVector(x.Inputs[1])
		if !ok || sv.Concat != nil {
			return nil
		}
		return sv.Entries
	}
	return x.AttrInts("split")
}
