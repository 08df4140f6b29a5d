package runtime

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestF32Row checks every float32 binary kernel path (vector bulk and scalar
// tail, vector–vector, vector–scalar, scalar–vector) against the scalar
// definition.
func TestF32Row(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for op := opAdd; op <= opMin; op++ {
		f := f32Func(op)
		for _, n := range []int{0, 1, 7, 8, 9, 16, 31, 33} {
			for _, st := range [][2]int{{1, 1}, {1, 0}, {0, 1}, {0, 0}} {
				t.Run(fmt.Sprintf("%s/n=%d/strides=%v", binOpNames[op], n, st), func(t *testing.T) {
					a, b := randF32(r, n+1), randF32(r, n+1)
					for i := range b {
						b[i] += 3 // keep divisors and Pow bases away from 0
						a[i] = a[i]*a[i] + 0.5
					}
					dst := make([]float32, n)
					f32Row(op, dst, a, b, st[0], st[1])
					for i := range dst {
						want := f(a[i*st[0]], b[i*st[1]])
						if op == opPow && st[1] == 0 {
							want = f(a[i*st[0]], b[0])
						}
						if dst[i] != want && !(op == opPow && closeRel(dst[i], want, 1e-6)) {
							t.Fatalf("dst[%d] = %v, want %v", i, dst[i], want)
						}
					}
				})
			}
		}
	}
}

func closeRel(a, b float32, rel float64) bool {
	d := float64(a - b)
	if d < 0 {
		d = -d
	}
	m := float64(b)
	if m < 0 {
		m = -m
	}
	return d <= rel*m
}

func randF32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// BenchmarkUnaryLoop times a float32 unary op with a loop of its own against
// the same op through viaFloat64 (the reason Sqrt keeps its loop):
//
//	go test ./runtime -run '^$' -bench UnaryLoop
func BenchmarkUnaryLoop(b *testing.B) {
	src := make([]float32, 1<<16)
	for i := range src {
		src[i] = float32(i%1000) + 0.5
	}
	dst := make([]float32, len(src))
	var sqrt unaryF32
	for _, u := range unaryDefs {
		if u.name == "Sqrt" {
			sqrt = u.f32
		}
	}
	for _, c := range []struct {
		name string
		f    unaryF32
	}{{"Sqrt/own", sqrt}, {"Sqrt/viaFloat64", viaFloat64(math.Sqrt)}, {"Erf/viaFloat64", viaFloat64(math.Erf)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				c.f(dst, src)
			}
		})
	}
}
