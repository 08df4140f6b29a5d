package lm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// logSumExpMathMax is LogSumExp as first written, with math.Max: the
// builtin max must give the same bits, NaN, infinities and signed zeros
// included.
func logSumExpMathMax(z []float32) float64 {
	mx := math.Inf(-1)
	for _, x := range z {
		mx = math.Max(mx, float64(x))
	}
	var s float64
	for _, x := range z {
		s += math.Exp(float64(x) - mx)
	}
	return mx + math.Log(s)
}

func TestLogSumExpBits(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	negZero := float32(math.Copysign(0, -1))
	cases := [][]float32{
		nil,
		{0},
		{negZero},
		{negZero, 0},
		{0, negZero},
		{1, 2, 3},
		{-inf, -inf},
		{-inf, 1},
		{inf, 1},
		{nan, 1},
		{1, nan},
		{-1e30, 1e30},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		z := make([]float32, 1+r.IntN(5000))
		for i := range z {
			z[i] = float32(r.NormFloat64() * 8)
		}
		cases = append(cases, z)
	}
	for i, z := range cases {
		got, want := LogSumExp(z), logSumExpMathMax(z)
		if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("case %d (%d values): LogSumExp = %v (%#x), math.Max version %v (%#x)", i, len(z), got, math.Float64bits(got), want, math.Float64bits(want))
		}
	}
}

// BenchmarkLogSumExp times a 32,000-logit row with the builtin max (the
// code) and with math.Max (logSumExpMathMax, as first written):
//
//	go test ./lm -run '^$' -bench LogSumExp
func BenchmarkLogSumExp(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	z := make([]float32, 32000)
	for i := range z {
		z[i] = float32(r.NormFloat64() * 8)
	}
	for _, c := range []struct {
		name string
		f    func([]float32) float64
	}{{"max", LogSumExp}, {"math.Max", logSumExpMathMax}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(z)))
			for b.Loop() {
				c.f(z)
			}
		})
	}
}
