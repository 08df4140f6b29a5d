package distill

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/onnxslm/onnxslm/internal/stats"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// randomLayer makes a layer with the test models' weight scales.
func randomLayer(kind Kind, d, heads, kvHeads, ffn int, seed uint64) *Layer {
	rng := rand.New(rand.NewPCG(seed, 7))
	hd := d / heads
	l := &Layer{Kind: kind, Hidden: d, Heads: heads, KVHeads: kvHeads, HeadDim: hd, FFN: ffn,
		Eps: 1e-6, Scale: float32(math.Sqrt(float64(hd)))}
	w := func(in, out int, std float64) []float32 {
		return convert[float32](randn(rng, in*out, 0, std/math.Sqrt(float64(in))))
	}
	gain := func(n int) []float32 { return convert[float32](randn(rng, n, 1, 0.1)) }
	bias := func(n int) []float32 { return convert[float32](randn(rng, n, 0, 0.1)) }
	l.AttnNorm, l.MLPNorm = gain(d), gain(d)
	l.Q, l.K, l.V = w(d, heads*hd, 1), w(d, kvHeads*hd, 1), w(d, kvHeads*hd, 1)
	l.O = w(heads*hd, d, 0.5)
	l.Up, l.Down = w(d, ffn, 1), w(ffn, d, 0.5)
	if kind == Llama {
		rot := RotaryTables(hd, 64, 10000)
		l.Rotary = &rot
		l.Gate = w(d, ffn, 1)
		l.QBias = bias(heads * hd) // Qwen-style q bias: optional in a llama layer
	} else {
		l.Eps = 1e-5
		l.AttnNormBias, l.MLPNormBias = bias(d), bias(d)
		l.QBias, l.KBias, l.VBias, l.OBias = bias(heads*hd), bias(kvHeads*hd), bias(kvHeads*hd), bias(d)
		l.UpBias, l.DownBias = bias(ffn), bias(d)
	}
	return l
}

// refForward is the layer written out plainly in float64 from the export's
// graph, one token and one head at a time, independent of the kernels.
func refForward(l *Layer, x []float32, t int) []float64 {
	d, hd := l.Hidden, l.HeadDim
	rows := len(x) / d
	at := func(w []float32, in, out, i, j int) float64 { return float64(w[i*out+j]) }
	lin := func(v []float64, w, b []float32, in, out int) []float64 {
		y := make([]float64, out)
		for j := range y {
			for i := 0; i < in; i++ {
				y[j] += v[i] * at(w, in, out, i, j)
			}
			if b != nil {
				y[j] += float64(b[j])
			}
		}
		return y
	}
	norm := func(v []float64, g, b []float32) []float64 {
		y := make([]float64, d)
		var mu, ms float64
		for _, e := range v {
			mu += e / float64(d)
			ms += e * e / float64(d)
		}
		for i, e := range v {
			if l.Kind == GPT2 {
				y[i] = (e-mu)/math.Sqrt(ms-mu*mu+float64(l.Eps))*float64(g[i]) + float64(b[i])
			} else {
				y[i] = e / math.Sqrt(ms+float64(l.Eps)) * float64(g[i])
			}
		}
		return y
	}
	rope := func(v []float64, p int) {
		if l.Rotary == nil {
			return
		}
		for h := 0; h < len(v)/hd; h++ {
			u := append([]float64(nil), v[h*hd:(h+1)*hd]...)
			for j := 0; j < hd; j++ {
				rot := -u[(j+hd/2)%hd]
				if j >= hd/2 {
					rot = u[j-hd/2]
				}
				v[h*hd+j] = u[j]*float64(l.Rotary.Cos[p*hd+j]) + rot*float64(l.Rotary.Sin[p*hd+j])
			}
		}
	}
	out := make([]float64, len(x))
	for s := 0; s < rows/t; s++ {
		xs := make([][]float64, t)
		q, k, v := make([][]float64, t), make([][]float64, t), make([][]float64, t)
		for p := 0; p < t; p++ {
			xs[p] = make([]float64, d)
			for i := range xs[p] {
				xs[p][i] = float64(x[(s*t+p)*d+i])
			}
			h := norm(xs[p], l.AttnNorm, l.AttnNormBias)
			q[p], k[p], v[p] = lin(h, l.Q, l.QBias, d, l.Heads*hd), lin(h, l.K, l.KBias, d, l.KVHeads*hd), lin(h, l.V, l.VBias, d, l.KVHeads*hd)
			rope(q[p], p)
			rope(k[p], p)
		}
		for p := 0; p < t; p++ {
			a := make([]float64, l.Heads*hd)
			for h := 0; h < l.Heads; h++ {
				g := h * l.KVHeads / l.Heads
				sc := make([]float64, p+1)
				m := math.Inf(-1)
				for j := 0; j <= p; j++ {
					for i := 0; i < hd; i++ {
						sc[j] += q[p][h*hd+i] * k[j][g*hd+i]
					}
					sc[j] /= float64(l.Scale)
					m = math.Max(m, sc[j])
				}
				var z float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - m)
					z += sc[j]
				}
				for j := range sc {
					for i := 0; i < hd; i++ {
						a[h*hd+i] += sc[j] / z * v[j][g*hd+i]
					}
				}
			}
			x2 := lin(a, l.O, l.OBias, l.Heads*hd, d)
			for i := range x2 {
				x2[i] += xs[p][i]
			}
			h2 := norm(x2, l.MLPNorm, l.MLPNormBias)
			m := lin(h2, l.Up, l.UpBias, d, l.FFN)
			if l.Kind == Llama {
				gate := lin(h2, l.Gate, nil, d, l.FFN)
				for i, gv := range gate {
					m[i] *= gv / (1 + math.Exp(-gv))
				}
			} else {
				for i, f := range m {
					m[i] = 0.5 * f * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(f+0.044715*f*f*f)))
				}
			}
			y := lin(m, l.Down, l.DownBias, l.FFN, d)
			for i := range y {
				out[(s*t+p)*d+i] = y[i] + x2[i]
			}
		}
	}
	return out
}

// graphForward runs the gorgonia graph of l on x.
func graphForward(t *testing.T, l *Layer, x []float32, rows, tokens int) []float32 {
	n, err := buildNet(l, rows, tokens, tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if err := setInput(n.x, [][]float32{x}); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(n.g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	return n.out.Value().Data().([]float32)
}

// TestForwardMatchesReference: the gorgonia graph and Forward compute the
// layer the plain float64 reference computes, for both kinds (GQA, rotary
// and a q bias in the llama case), two rows of 9 tokens.
func TestForwardMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    *Layer
	}{
		{"llama-gqa", randomLayer(Llama, 16, 4, 2, 24, 1)},
		{"llama-mha", randomLayer(Llama, 16, 2, 2, 24, 2)},
		{"gpt2", randomLayer(GPT2, 12, 3, 3, 20, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const rows, tokens = 2, 9
			x := convert[float32](randn(rand.New(rand.NewPCG(9, 9)), rows*tokens*tc.l.Hidden, 0, 1))
			want := refForward(tc.l, x, tokens)
			got, err := Forward(tc.l, x, tokens)
			if err != nil {
				t.Fatal(err)
			}
			if e := stats.RelMax(got, want); e > 2e-6 {
				t.Errorf("Forward differs from the reference by %.2g (relative to max |y|)", e)
			}
			if e := stats.RelMax(graphForward(t, tc.l, x, rows, tokens), want); e > 2e-6 {
				t.Errorf("gorgonia graph differs from the reference by %.2g", e)
			}
		})
	}
}

func TestQKVSplitJoin(t *testing.T) {
	w := convert[float32](randn(rand.New(rand.NewPCG(3, 3)), 4*3*5, 0, 1))
	q, k, v := SplitQKV(w, 4, 5)
	if q[5] != w[15] || k[0] != w[5] || v[19] != w[59] {
		t.Fatalf("split took the wrong columns")
	}
	back := JoinQKV(q, k, v, 4, 5)
	for i := range w {
		if back[i] != w[i] {
			t.Fatalf("join(split(w))[%d] = %v, want %v", i, back[i], w[i])
		}
	}
}

func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(l *Layer)
	}{
		{"short q", func(l *Layer) { l.Q = l.Q[1:] }},
		{"no gate", func(l *Layer) { l.Gate = nil }},
		{"heads", func(l *Layer) { l.KVHeads = 3 }},
		{"scale", func(l *Layer) { l.Scale = 0 }},
		{"gpt2 gate", func(l *Layer) { l.Kind = GPT2 }},
	} {
		l := randomLayer(Llama, 8, 2, 2, 8, 1)
		tc.mutate(l)
		if err := l.Validate(); err == nil {
			t.Errorf("%s: Validate accepted a broken layer", tc.name)
		}
	}
}
