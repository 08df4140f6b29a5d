package kernels

import (
	"math"
	"testing"
)

// TestVectorMath compares the float32 kernels with float64 math over a grid
// that covers the polynomial's range reduction, the clamps and the tails.
func TestVectorMath(t *testing.T) {
	var xs []float32
	for x := -120.0; x <= 120; x += 0.0137 {
		xs = append(xs, float32(x))
	}
	xs = append(xs, 0, -0, 1e-8, -1e-8, float32(math.Inf(1)), float32(math.Inf(-1)), -3.4028235e38, 3.4028235e38)
	got := make([]float32, len(xs))
	cases := []struct {
		name string
		f    func(d, s []float32)
		ref  func(float64) float64
		// relative error bound, and absolute error bound (either suffices)
		rel, abs float64
	}{
		{"exp", Exp, math.Exp, 4e-7, 1e-37},
		{"sigmoid", Sigmoid, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, 4e-7, 1e-37},
		{"tanh", Tanh, math.Tanh, 4e-7, 2e-7},
	}
	for _, c := range cases {
		c.f(got, xs)
		for i, x := range xs {
			want := c.ref(float64(x))
			g := float64(got[i])
			if math.IsInf(want, 0) || want > math.MaxFloat32 {
				if !math.IsInf(g, 1) && g < 3e38 {
					t.Errorf("%s(%v) = %v, want %v", c.name, x, g, want)
				}
				continue
			}
			d := math.Abs(g - want)
			if d > c.abs && d > c.rel*math.Abs(want) {
				t.Errorf("%s(%v) = %v, want %v (error %.2g)", c.name, x, g, want, d)
			}
		}
	}
	// ExpShiftSum over a softmax-like row, masked entries included.
	row := []float32{1000, 0, 0, 0, -3.4028235e38, 3, 2, 1, 999.5}
	dst := make([]float32, len(row))
	s := ExpShiftSum(dst, row, 1000)
	var want float64
	for i, v := range row {
		e := math.Exp(float64(v) - 1000)
		want += e
		if d := math.Abs(float64(dst[i]) - e); d > 4e-7*e && d > 1e-37 {
			t.Errorf("ExpShiftSum: dst[%d] = %v, want %v", i, dst[i], e)
		}
	}
	if math.Abs(s-want) > 1e-6*want {
		t.Errorf("ExpShiftSum = %v, want %v", s, want)
	}
}

func BenchmarkExp(b *testing.B) {
	src := make([]float32, 1<<16)
	for i := range src {
		src[i] = float32(i%160) - 80
	}
	dst := make([]float32, len(src))
	for b.Loop() {
		Exp(dst, src)
	}
	b.SetBytes(int64(4 * len(src)))
}

func TestMaxF32(t *testing.T) {
	for n := 1; n <= 20; n++ {
		for at := range n {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(-i)
			}
			x[at] = 7
			if got := Max(x); got != 7 {
				t.Fatalf("n=%d, max at %d: got %v", n, at, got)
			}
			x[at] = float32(math.NaN())
			if got := Max(x); got == got {
				t.Fatalf("n=%d, NaN at %d: got %v, want NaN", n, at, got)
			}
		}
	}
}
