package distill

import (
	"fmt"

	"gorgonia.org/tensor"
)

// The layer's custom ops. Each is one kernel with a hand-derived backward
// rather than a composition of gorgonia primitives: gorgonia has no RMSNorm,
// LayerNorm, rotary, grouped-query or causal attention; its SoftMax takes
// each row's maximum from the tensor's first element (NaN rows); and every
// primitive op costs 0.1–0.2 ms in its machine plus a full pass over memory
// (RMSNorm alone would be ~8 ops). docs/design/recovery.md has the numbers.

func sameAs(i int) func([]tensor.Shape) (tensor.Shape, error) {
	return func(s []tensor.Shape) (tensor.Shape, error) { return s[i].Clone(), nil }
}

// rowsOf checks that x is [rows, n] and each vector input has n values.
func rowsOf(name string, n int, vecs ...int) func([]tensor.Shape) (tensor.Shape, error) {
	return func(s []tensor.Shape) (tensor.Shape, error) {
		if s[0].Dims() != 2 || s[0][1] != n {
			return nil, fmt.Errorf("distill: %s input is %v, want [rows, %d]", name, s[0], n)
		}
		for _, i := range vecs {
			if s[i].TotalSize() != n {
				return nil, fmt.Errorf("distill: %s parameter %d is %v, want %d values", name, i, s[i], n)
			}
		}
		return s[0].Clone(), nil
	}
}

func rmsNormKernel(n int, eps float32) *kernel {
	return &kernel{name: "RMSNorm", out: rowsOf("RMSNorm", n, 1), diff: []bool{true, true},
		f32: rmsImpl[float32](n, eps), f64: rmsImpl[float64](n, eps)}
}

func rmsImpl[F float](n int, eps float32) impl[F] {
	return impl[F]{
		fwd: func(in [][]F, y []F) { rmsNormFwd(in[0], in[1], y, n, F(eps)) },
		bwd: func(in [][]F, _, dy []F, d [][]F) { rmsNormBwd(in[0], in[1], dy, d[0], d[1], n, F(eps)) },
	}
}

func layerNormKernel(n int, eps float32) *kernel {
	return &kernel{name: "LayerNorm", out: rowsOf("LayerNorm", n, 1, 2), diff: []bool{true, true, true},
		f32: lnImpl[float32](n, eps), f64: lnImpl[float64](n, eps)}
}

func lnImpl[F float](n int, eps float32) impl[F] {
	return impl[F]{
		fwd: func(in [][]F, y []F) { layerNormFwd(in[0], in[1], in[2], y, n, F(eps)) },
		bwd: func(in [][]F, _, dy []F, d [][]F) { layerNormBwd(in[0], in[1], dy, d[0], d[1], d[2], n, F(eps)) },
	}
}

func biasKernel(n int) *kernel {
	return &kernel{name: "AddBias", out: rowsOf("AddBias", n, 1), diff: []bool{true, true},
		f32: biasImpl[float32](), f64: biasImpl[float64]()}
}

func biasImpl[F float]() impl[F] {
	return impl[F]{
		fwd: func(in [][]F, y []F) { biasFwd(in[0], in[1], y) },
		bwd: func(_ [][]F, _, dy []F, d [][]F) { biasBwd(dy, d[0], d[1]) },
	}
}

func swiGLUKernel() *kernel {
	out := func(s []tensor.Shape) (tensor.Shape, error) {
		if !s[0].Eq(s[1]) {
			return nil, fmt.Errorf("distill: SwiGLU of %v and %v", s[0], s[1])
		}
		return s[0].Clone(), nil
	}
	return &kernel{name: "SwiGLU", out: out, diff: []bool{true, true},
		f32: swiImpl[float32](), f64: swiImpl[float64]()}
}

func swiImpl[F float]() impl[F] {
	return impl[F]{
		fwd: func(in [][]F, y []F) { swiGLUFwd(in[0], in[1], y) },
		bwd: func(in [][]F, _, dy []F, d [][]F) { swiGLUBwd(in[0], in[1], dy, d[0], d[1]) },
	}
}

func geluKernel() *kernel {
	return &kernel{name: "GeluTanh", out: sameAs(0), diff: []bool{true},
		f32: geluImpl[float32](), f64: geluImpl[float64]()}
}

func geluImpl[F float]() impl[F] {
	return impl[F]{
		fwd: func(in [][]F, y []F) { geluFwd(in[0], y) },
		bwd: func(in [][]F, _, dy []F, d [][]F) { geluBwd(in[0], dy, d[0]) },
	}
}

// attentionKernel is causal attention (rotary when l has tables) over rows
// of t tokens: inputs q, k, v as the projections give them.
func attentionKernel(l *Layer, t int) *kernel {
	wq, wk := l.Heads*l.HeadDim, l.KVHeads*l.HeadDim
	out := func(s []tensor.Shape) (tensor.Shape, error) {
		if s[0].Dims() != 2 || s[0][1] != wq || s[0][0]%t != 0 ||
			!s[1].Eq(tensor.Shape{s[0][0], wk}) || !s[2].Eq(s[1]) {
			return nil, fmt.Errorf("distill: attention of q %v, k %v, v %v for %d heads, %d kv heads, head dim %d, rows of %d",
				s[0], s[1], s[2], l.Heads, l.KVHeads, l.HeadDim, t)
		}
		return s[0].Clone(), nil
	}
	return &kernel{name: fmt.Sprintf("Attention(T=%d)", t), out: out, diff: []bool{true, true, true},
		f32: attnImpl(attnOf[float32](l, t)), f64: attnImpl(attnOf[float64](l, t))}
}

func attnOf[F float](l *Layer, t int) *attnShape[F] {
	a := &attnShape[F]{t: t, h: l.Heads, kv: l.KVHeads, hd: l.HeadDim, scale: F(l.Scale)}
	if r := l.Rotary; r != nil {
		a.cos, a.sin = convert[F](r.Cos[:t*l.HeadDim]), convert[F](r.Sin[:t*l.HeadDim])
	}
	return a
}

// convert returns x's values as F.
func convert[F, S float](x []S) []F {
	out := make([]F, len(x))
	for i, v := range x {
		out[i] = F(v)
	}
	return out
}

func attnImpl[F float](a *attnShape[F]) impl[F] {
	return impl[F]{
		fwd: func(in [][]F, y []F) { a.forward(in[0], in[1], in[2], y) },
		bwd: func(in [][]F, _, dy []F, d [][]F) { a.backward(in[0], in[1], in[2], dy, d[0], d[1], d[2]) },
	}
}
