package distill

import (
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/internal/stats"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestAdamMatchesGorgonia: five steps of our Adam and of gorgonia's
// AdamSolver on the same layer and rows give the same weights (to float32
// rounding: the two order their float32 operations differently).
func TestAdamMatchesGorgonia(t *testing.T) {
	student, fit, _ := task(t, Llama, 2, 0)
	run := func(ours bool) *Layer {
		n, err := buildNet(student, 2, fit.T, tensor.Float32)
		if err != nil {
			t.Fatal(err)
		}
		y := G.NewMatrix(n.g, tensor.Float32, G.WithShape(n.x.Shape()...), G.WithName("y"))
		cost, err := mseCost(n.out, y, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := G.Grad(cost, n.params...); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(n.g, G.BindDualValues(n.params...))
		defer vm.Close()
		mine, theirs := newAdam(1e-3), G.NewAdamSolver(G.WithLearnRate(1e-3))
		for step := 0; step < 5; step++ {
			if err := setInput(n.x, fit.X); err != nil {
				t.Fatal(err)
			}
			if err := setInput(y, fit.Y); err != nil {
				t.Fatal(err)
			}
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			if ours {
				err = mine.step(n.params)
			} else {
				err = theirs.Step(G.NodesToValueGrads(n.params))
			}
			if err != nil {
				t.Fatal(err)
			}
			vm.Reset()
		}
		out := student.Clone()
		n.weights(out)
		return out
	}
	a, b := run(true), run(false)
	var worst float64
	defer func() { t.Logf("largest difference: %.2g of the largest move", worst) }()
	for i, p := range a.Params() {
		want := *b.Params()[i].Data
		orig := *student.Params()[i].Data
		diff, moved := stats.MaxAbsDiff(*p.Data, want), stats.MaxAbsDiff(want, orig)
		worst = math.Max(worst, diff/moved)
		if diff > 1e-3*moved || moved == 0 {
			t.Errorf("%s: ours and gorgonia's Adam differ by %.2g after moving the weights by up to %.2g", p.Name, diff, moved)
		}
	}
}

// TestChunksCoverOnce: the goroutine split of Adam's pass visits every
// element exactly once (run under -race too).
func TestChunksCoverOnce(t *testing.T) {
	for _, n := range []int{0, 5, 1<<17 - 1, 1 << 17, 1<<20 + 3} {
		seen := make([]int32, n)
		chunks(n, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("n=%d: element %d visited %d times", n, i, c)
			}
		}
	}
}
