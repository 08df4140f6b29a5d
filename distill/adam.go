package distill

import (
	"fmt"
	"math"
	"sync"

	G "gorgonia.org/gorgonia"
)

// adam is Adam (Kingma & Ba) with gorgonia's defaults (β₁ 0.9, β₂ 0.999,
// ε 1e-8) updating float32 parameters in one pass per tensor. gorgonia's
// AdamSolver computes the same update but clones the gradient four times and
// makes ~12 passes per tensor per step: on a 1B-class layer (51 M
// parameters) that was 2.5 s of a step's CPU, as much as the forward and
// backward together (docs/design/recovery.md). The test checks both give
// the same weights.
type adam struct {
	lr, b1, b2, eps float64
	t               int
	m, v            [][]float32
}

func newAdam(lr float64) *adam { return &adam{lr: lr, b1: 0.9, b2: 0.999, eps: 1e-8} }

// step updates every node's value from its gradient and zeroes the gradient.
func (a *adam) step(nodes G.Nodes) error {
	if a.m == nil {
		for _, n := range nodes {
			k := n.Shape().TotalSize()
			a.m, a.v = append(a.m, make([]float32, k)), append(a.v, make([]float32, k))
		}
	}
	a.t++
	c1 := float32(a.lr / (1 - math.Pow(a.b1, float64(a.t))))
	c2 := float32(1 / (1 - math.Pow(a.b2, float64(a.t))))
	b1, b2, eps := float32(a.b1), float32(a.b2), float32(a.eps)
	for i, n := range nodes {
		w, ok := n.Value().Data().([]float32)
		gv, err := n.Grad()
		if err != nil || !ok {
			return fmt.Errorf("distill: parameter %s has no float32 value and gradient: %v", n.Name(), err)
		}
		g := gv.Data().([]float32)
		m, v := a.m[i], a.v[i]
		chunks(len(w), func(lo, hi int) {
			for j := lo; j < hi; j++ {
				gj := g[j]
				m[j] = b1*m[j] + (1-b1)*gj
				v[j] = b2*v[j] + (1-b2)*gj*gj
				w[j] -= c1 * m[j] / (float32(math.Sqrt(float64(v[j]*c2))) + eps)
				g[j] = 0
			}
		})
	}
	return nil
}

// chunks runs f over [0, n) in pieces on two goroutines when n is large.
// Each element is updated by itself, so the result does not depend on the
// split.
func chunks(n int, f func(lo, hi int)) {
	const piece = 1 << 16
	if n < 2*piece {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += piece * 4 {
		hi := min(n, lo+piece*4)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}
