package rewrite

// This file rewires the residual stream of layouts that fuse each residual add
// into the next norm (discover.Stack.Branch: onnxruntime-genai's
// SkipSimplifiedLayerNormalization). Layer i's input norm adds Branch[i] (the
// last branch of layer i−1) to Hidden[i]; removing layers a..b makes the norm
// after them add Branch[a] to Hidden[a], and when a is 0 there is no branch to
// add: that norm becomes a plain SimplifiedLayerNormalization of the embeddings.

import (
	"fmt"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// dropBranch rewires the branch leaving removed layers a..b (Hidden is rewired
// by the caller).
func (w *merger) dropBranch(a, b int) error {
	g := w.g
	out := g.Value(w.s.Branch[b+1])
	if out == nil {
		return fmt.Errorf("layers %d..%d: branch %q not found", a, b, w.s.Branch[b+1])
	}
	if a > 0 {
		in := g.Value(w.s.Branch[a])
		if in == nil {
			return fmt.Errorf("layers %d..%d: branch %q not found", a, b, w.s.Branch[a])
		}
		if err := w.moveBranchBias(a, b, in, out); err != nil {
			return err
		}
		g.ReplaceUses(out, in)
		return nil
	}
	// Nothing to add to the embeddings: the norms reading the branch lose it.
	for _, c := range append([]*graph.Node(nil), out.Consumers...) {
		if c.Index >= 0 {
			if k := w.inLayer[c.Index]; k >= 0 && w.removed[k] {
				continue // goes with its layer
			}
		}
		if err := w.plainNorm(c, out); err != nil {
			return err
		}
	}
	return nil
}

// moveBranchBias: where the boundary norms also add the branch's bias
// (discover.Stack.BranchBias), the norm after removed layers a..b takes the
// bias that layer a's input norm added with branch in (layer a−1's, as that
// norm reads it now: merged when layer a−1 heads a merged window), not
// layer b's.
func (w *merger) moveBranchBias(a, b int, in, out *graph.Value) error {
	if w.s.BranchBias == nil || w.s.BranchBias[b+1] == "" {
		return nil
	}
	var bias *graph.Value
	for _, c := range in.Consumers {
		if c.Index >= 0 && w.inLayer[c.Index] == a && len(c.Inputs) > 4 && c.Inputs[4] != nil {
			bias = c.Inputs[4]
		}
	}
	if bias == nil {
		return fmt.Errorf("layers %d..%d: no norm of layer %d adds branch %q with a bias", a, b, a, in.Name)
	}
	for _, c := range append([]*graph.Node(nil), out.Consumers...) {
		if c.Index >= 0 {
			if k := w.inLayer[c.Index]; k >= 0 && w.removed[k] {
				continue // goes with its layer
			}
		}
		if len(c.Inputs) > 4 && c.Inputs[4] != nil {
			w.g.SetInput(c, 4, bias)
		}
	}
	return nil
}

// plainNorm replaces the skip norm n, whose skip input br is gone, by the norm
// of its other input alone: SkipSimplifiedLayerNormalization(x, br, γ) by
// SimplifiedLayerNormalization(x, γ), SkipLayerNormalization(x, br, γ, β[, bias])
// by LayerNormalization(x, γ, β). What read its sum output (x + br) reads x.
func (w *merger) plainNorm(n *graph.Node, br *graph.Value) error {
	g := w.g
	var op string
	switch n.Op {
	case "SkipSimplifiedLayerNormalization":
		op = "SimplifiedLayerNormalization"
	case "SkipLayerNormalization":
		op = "LayerNormalization"
	default:
		return fmt.Errorf("%s reads the branch %q of a removed first layer; only a skip norm can do without it", n, br.Name)
	}
	if len(n.Inputs) < 3 || (n.Inputs[0] != br && n.Inputs[1] != br) {
		return fmt.Errorf("%s: cannot drop its skip input %q (it has %d inputs)", n, br.Name, len(n.Inputs))
	}
	// A bias at input 4 (onnxruntime's SkipLayerNormalization) is the removed
	// branch's: it goes with it.
	x := n.Inputs[0]
	if x == br {
		x = n.Inputs[1]
	}
	ins := []string{x.Name, n.Inputs[2].Name}
	if len(n.Inputs) > 3 && n.Inputs[3] != nil {
		ins = append(ins, n.Inputs[3].Name)
	}
	attrs := []*pb.AttributeProto{onnx.AttrInt("axis", -1)}
	for _, at := range n.Attrs {
		if at.GetName() == "epsilon" {
			attrs = append([]*pb.AttributeProto{at}, attrs...)
		}
	}
	// stash_type 1: the builder's float32 statistics.
	attrs = append(attrs, onnx.AttrInt("stash_type", 1))
	norm := n.Outputs[0]
	name := norm.Name
	if err := g.Rename(norm, g.UniqueName(name+".skip")); err != nil {
		return err
	}
	plain, err := g.AddNode(op, n.Name, ins, []string{name}, attrs...)
	if err != nil {
		return err
	}
	g.ReplaceUses(norm, plain.Outputs[0])
	if len(n.Outputs) > 3 && n.Outputs[3] != nil {
		g.ReplaceUses(n.Outputs[3], x)
	}
	for _, o := range n.Outputs[1:] {
		if o != nil && (o.IsOutput() || len(o.Consumers) > 0) {
			return fmt.Errorf("%s: its output %q is still read", n, o.Name)
		}
	}
	g.RemoveNodes(map[*graph.Node]bool{n: true})
	return nil
}
