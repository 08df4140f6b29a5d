package distill

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// net is a layer's computation as a gorgonia expression graph over a fixed
// number of rows (gorgonia's shapes are static).
type net struct {
	g      *G.ExprGraph
	x, out *G.Node
	params []*G.Node // in Layer.Params order
	names  []string
}

// buildNet builds out = layer(x) for x [rows·t, d] in element type dt, its
// parameters initialised from l (copied).
func buildNet(l *Layer, rows, t int, dt tensor.Dtype) (*net, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if t > l.maxPos() {
		return nil, fmt.Errorf("distill: rows of %d tokens exceed the rotary tables' %d positions", t, l.maxPos())
	}
	g := G.NewGraph()
	n := &net{g: g}
	byName := map[string]*G.Node{}
	for _, p := range l.Params() {
		var val tensor.Tensor
		if dt == tensor.Float64 {
			val = tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(convert[float64](*p.Data)))
		} else {
			val = tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(append([]float32(nil), *p.Data...)))
		}
		node := G.NewTensor(g, dt, len(p.Shape), G.WithShape(p.Shape...), G.WithName(p.Name), G.WithValue(val))
		byName[p.Name] = node
		n.params = append(n.params, node)
		n.names = append(n.names, p.Name)
	}
	d := l.Hidden
	n.x = G.NewMatrix(g, dt, G.WithShape(rows*t, d), G.WithName("x"))
	b := &builder{p: byName}
	linear := func(x *G.Node, w, bias string) *G.Node {
		y := b.do(func() (*G.Node, error) { return G.Mul(x, byName[w]) })
		if bn := byName[bias]; bn != nil {
			y = b.do(func() (*G.Node, error) { return biasKernel(bn.Shape()[0]).apply(y, bn) })
		}
		return y
	}
	norm := func(x *G.Node, gain, bias string) *G.Node {
		if l.Kind == GPT2 {
			return b.do(func() (*G.Node, error) { return layerNormKernel(d, l.Eps).apply(x, byName[gain], byName[bias]) })
		}
		return b.do(func() (*G.Node, error) { return rmsNormKernel(d, l.Eps).apply(x, byName[gain]) })
	}
	h := norm(n.x, "attn_norm", "attn_norm_bias")
	q, k, v := linear(h, "q", "q_bias"), linear(h, "k", "k_bias"), linear(h, "v", "v_bias")
	a := b.do(func() (*G.Node, error) { return attentionKernel(l, t).apply(q, k, v) })
	x2 := b.do(func() (*G.Node, error) { return G.Add(n.x, linear(a, "o", "o_bias")) })
	h2 := norm(x2, "mlp_norm", "mlp_norm_bias")
	var m *G.Node
	if l.Kind == Llama {
		gate, up := linear(h2, "gate", ""), linear(h2, "up", "")
		m = b.do(func() (*G.Node, error) { return swiGLUKernel().apply(gate, up) })
	} else {
		f := linear(h2, "up", "up_bias")
		m = b.do(func() (*G.Node, error) { return geluKernel().apply(f) })
	}
	n.out = b.do(func() (*G.Node, error) { return G.Add(x2, linear(m, "down", "down_bias")) })
	if b.err != nil {
		return nil, fmt.Errorf("distill: building the %s layer graph: %w", l.Kind, b.err)
	}
	return n, nil
}

// builder keeps the first error of a chain of graph constructions.
type builder struct {
	p   map[string]*G.Node
	err error
}

func (b *builder) do(f func() (*G.Node, error)) *G.Node {
	if b.err != nil {
		return nil
	}
	n, err := f()
	if err != nil {
		b.err = err
	}
	return n
}

// setRows copies rows of x (each [t·d]) into the input node's value.
func setInput[F float](node *G.Node, rows [][]F) error {
	var flat []F
	for _, r := range rows {
		flat = append(flat, r...)
	}
	if s := node.Shape(); s.TotalSize() != len(flat) {
		return fmt.Errorf("distill: %d values for input %v", len(flat), s)
	}
	return G.Let(node, tensor.New(tensor.WithShape(node.Shape()...), tensor.WithBacking(flat)))
}

// weights copies the graph's current parameter values into l.
func (n *net) weights(l *Layer) {
	for i, p := range l.Params() {
		switch v := n.params[i].Value().Data().(type) {
		case []float32:
			copy(*p.Data, v)
		case []float64:
			for j, x := range v {
				(*p.Data)[j] = float32(x)
			}
		}
	}
}
