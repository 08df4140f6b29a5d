package repair

import (
	"math/rand/v2"
	"testing"

	"github.com/onnxslm/onnxslm/runtime"
)

// BenchmarkFit is one repair: accumulate the normal equations, then solve;
// for llama8 (d = 128, 1,536 fit tokens in 8-row batches), the 374M Llama
// of docs/SCALE.md (d = 1024, 384 tokens) and the 1.26 B one (d = 2048,
// 1,536 tokens: the built-in calibration set's fit rows), float64 and on
// the float32 path (float32.go; the float64 fit at d 2048 takes minutes).
//
//	go test ./repair -run '^$' -bench Fit -benchtime 3x
func BenchmarkFit(b *testing.B) {
	for _, c := range []struct {
		name      string
		d, tokens int
		f32       bool
	}{{"d128", 128, 1024, false}, {"d1024", 1024, 384, false}, {"d1024-f32", 1024, 384, true}, {"d2048-f32", 2048, 1536, true}} {
		b.Run(c.name, func(b *testing.B) { benchmarkFit(b, c.d, c.tokens, c.f32) })
	}
}

func benchmarkFit(b *testing.B, d, tokens int, f32 bool) {
	newProblem := func() (*Problem, error) {
		if f32 {
			return NewProblem32(d, d, true, runtime.BLAS(0))
		}
		return NewProblem(d, d, true)
	}
	r := rand.New(rand.NewPCG(1, 2))
	x, y := make([]float32, tokens*d), make([]float32, tokens*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
		y[i] = x[i] + float32(0.1*r.NormFloat64())
	}
	b.Run("add", func(b *testing.B) {
		for b.Loop() {
			p, _ := newProblem()
			if err := p.Add(x, y); err != nil {
				b.Fatal(err)
			}
		}
	})
	p, _ := newProblem()
	if err := p.Add(x, y); err != nil {
		b.Fatal(err)
	}
	b.Run("solve", func(b *testing.B) {
		for b.Loop() {
			if _, err := p.Solve(Options{Ridge: 0.01}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
