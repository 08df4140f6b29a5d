package distill

import "fmt"

// Forward computes the layer's output for x, rows of t tokens ([rows·t,
// Hidden] flattened), with the same kernels as training but no graph: what
// the reports measure and what the runtime computes from the written model.
func Forward(l *Layer, x []float32, t int) ([]float32, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	d := l.Hidden
	if t <= 0 || len(x) == 0 || len(x)%(t*d) != 0 {
		return nil, fmt.Errorf("distill: %d values are not rows of %d tokens × %d", len(x), t, d)
	}
	if t > l.maxPos() {
		return nil, fmt.Errorf("distill: rows of %d tokens exceed the rotary tables' %d positions", t, l.maxPos())
	}
	r := len(x) / d
	wq, wk, f := l.Heads*l.HeadDim, l.KVHeads*l.HeadDim, l.FFN
	linear := func(in []float32, k int, w, b []float32, n int) []float32 {
		y := make([]float32, r*n)
		gemm(false, false, r, n, k, in, k, w, n, 0, y, n)
		if b != nil {
			biasFwd(y, b, y)
		}
		return y
	}
	norm := func(in, g, b []float32) []float32 {
		y := make([]float32, len(in))
		if l.Kind == GPT2 {
			layerNormFwd(in, g, b, y, d, l.Eps)
		} else {
			rmsNormFwd(in, g, y, d, l.Eps)
		}
		return y
	}
	h := norm(x, l.AttnNorm, l.AttnNormBias)
	q, k, v := linear(h, d, l.Q, l.QBias, wq), linear(h, d, l.K, l.KBias, wk), linear(h, d, l.V, l.VBias, wk)
	a := make([]float32, r*wq)
	attnOf[float32](l, t).forward(q, k, v, a)
	x2 := linear(a, wq, l.O, l.OBias, d)
	for i := range x2 {
		x2[i] += x[i]
	}
	h2 := norm(x2, l.MLPNorm, l.MLPNormBias)
	m := make([]float32, r*f)
	if l.Kind == Llama {
		swiGLUFwd(linear(h2, d, l.Gate, nil, f), linear(h2, d, l.Up, nil, f), m)
	} else {
		geluFwd(linear(h2, d, l.Up, l.UpBias, f), m)
	}
	out := linear(m, f, l.Down, l.DownBias, d)
	for i := range out {
		out[i] += x2[i]
	}
	return out, nil
}
