package repair

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkFit is one repair: accumulate the normal equations, then solve;
// for llama8 (d = 128, 1,536 fit tokens in 8-row batches) and the 374M Llama
// of docs/SCALE.md (d = 1024, 384 tokens).
//
//	go test ./repair -run '^$' -bench Fit -benchtime 3x
func BenchmarkFit(b *testing.B) {
	for _, c := range []struct {
		name      string
		d, tokens int
	}{{"d128", 128, 1024}, {"d1024", 1024, 384}} {
		b.Run(c.name, func(b *testing.B) { benchmarkFit(b, c.d, c.tokens) })
	}
}

func benchmarkFit(b *testing.B, d, tokens int) {
	r := rand.New(rand.NewPCG(1, 2))
	x, y := make([]float32, tokens*d), make([]float32, tokens*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
		y[i] = x[i] + float32(0.1*r.NormFloat64())
	}
	b.Run("add", func(b *testing.B) {
		for b.Loop() {
			p, _ := NewProblem(d, d, true)
			if err := p.Add(x, y); err != nil {
				b.Fatal(err)
			}
		}
	})
	p, _ := NewProblem(d, d, true)
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
