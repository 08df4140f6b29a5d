package repair

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/onnxslm/onnxslm/runtime"
)

// correlated returns n samples of in features with a few strong shared
// directions (as activations have) and targets y = x + noise, out = in.
func correlated(r *rand.Rand, n, in int) (x, y []float32) {
	const dirs = 4
	basis := make([]float64, dirs*in)
	for i := range basis {
		basis[i] = r.NormFloat64()
	}
	x, y = make([]float32, n*in), make([]float32, n*in)
	for s := 0; s < n; s++ {
		var w [dirs]float64
		for k := range w {
			w[k] = 5 * r.NormFloat64()
		}
		for i := 0; i < in; i++ {
			v := r.NormFloat64() * (1 + float64(i%7))
			for k := range w {
				v += w[k] * basis[k*in+i]
			}
			x[s*in+i] = float32(v)
			y[s*in+i] = float32(v + 0.3*r.NormFloat64() + 0.1*float64(i%5))
		}
	}
	return x, y
}

// TestFloat32MatchesFloat64: the float32 path fits the map the float64 path
// does, up to rounding: its predictions on the samples agree to 1e-4 of
// their size, for blocked (ragged) and small sizes, with and without an
// offset, at the ridges the auto method tries, fewer samples than features
// included; the known map of noiseless data is recovered as well.
func TestFloat32MatchesFloat64(t *testing.T) {
	bl := runtime.BLAS(2)
	for _, tc := range []struct {
		name    string
		in, n   int
		offset  bool
		ridge   float64
		batches int
	}{
		{"small", 12, 200, true, 0.01, 2},
		{"blocked, ragged", 300, 900, false, 0.01, 3},
		{"blocked, offset", 300, 900, true, 0.001, 3},
		{"fewer samples than features", 260, 200, true, 0.1, 1},
		{"large ridge", 140, 400, false, 1000, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			p64, err := NewProblem(tc.in, tc.in, tc.offset)
			if err != nil {
				t.Fatal(err)
			}
			p32, err := NewProblem32(tc.in, tc.in, tc.offset, bl)
			if err != nil {
				t.Fatal(err)
			}
			var xs []float32
			for b := 0; b < tc.batches; b++ {
				x, y := correlated(r, tc.n/tc.batches, tc.in)
				xs = append(xs, x...)
				for _, p := range []*Problem{p64, p32} {
					if err := p.Add(x, y); err != nil {
						t.Fatal(err)
					}
				}
			}
			m64, err := p64.Solve(Options{Ridge: tc.ridge})
			if err != nil {
				t.Fatal(err)
			}
			m32, err := p32.Solve(Options{Ridge: tc.ridge})
			if err != nil {
				t.Fatal(err)
			}
			a, b := m64.Apply(xs), m32.Apply(xs)
			var num, den float64
			for i := range a {
				num += (float64(a[i]) - float64(b[i])) * (float64(a[i]) - float64(b[i]))
				den += float64(a[i]) * float64(a[i])
			}
			if rel := math.Sqrt(num / den); rel > 1e-4 {
				t.Errorf("predictions differ by %.2g of their size, want ≤ 1e-4", rel)
			} else {
				t.Logf("predictions differ by %.2g of their size", rel)
			}
			r64, _ := p64.Residual(m64)
			r32, _ := p32.Residual(m32)
			if math.Abs(r64-r32) > 1e-3*r64 {
				t.Errorf("residual %g (float32 path) against %g", r32, r64)
			}
		})
	}
	t.Run("known map", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		in, out := 150, 40
		m, c := randVec(r, in*out), randVec(r, out)
		p, err := NewProblem32(in, out, true, bl)
		if err != nil {
			t.Fatal(err)
		}
		for b := 0; b < 3; b++ {
			x, y := synthetic(r, 300, in, out, m, c, 0)
			if err := p.Add(x, y); err != nil {
				t.Fatal(err)
			}
		}
		solveNear(t, p, m, c, 1e-3)
	})
}

// TestFloat32FallsBack: a system the float32 factorisation cannot take (no
// ridge, a feature that is always zero) is solved on the float64 path, which
// the jitter keeps solvable, as NewProblem's is.
func TestFloat32FallsBack(t *testing.T) {
	in := 8
	x, y := make([]float32, 40*in), make([]float32, 40*in)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range x {
		if i%in != 3 {
			x[i] = float32(r.NormFloat64())
		}
		y[i] = x[i]
	}
	p, err := NewProblem32(in, in, false, runtime.BLAS(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Add(x, y); err != nil {
		t.Fatal(err)
	}
	fit, err := p.Solve(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range fit.Matrix {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("matrix[%d] = %g", i, v)
		}
	}
}
