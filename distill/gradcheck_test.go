package distill

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func randn(rng *rand.Rand, n int, mean, std float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = mean + std*rng.NormFloat64()
	}
	return out
}

// gradCase is one custom op applied to random float64 inputs of the given
// shapes (the first input's scale is std, the others' 1 ± 0.3 for gains).
type gradCase struct {
	name   string
	k      *kernel
	shapes [][]int
	means  []float64
}

func gradCases() []gradCase {
	llamaGQA := &Layer{Kind: Llama, Hidden: 8, Heads: 4, KVHeads: 2, HeadDim: 4, FFN: 8, Eps: 1e-6, Scale: 2}
	rot := RotaryTables(4, 16, 10000)
	llamaGQA.Rotary = &rot
	mha := &Layer{Kind: GPT2, Hidden: 6, Heads: 2, KVHeads: 2, HeadDim: 3, FFN: 8, Eps: 1e-5, Scale: 1.7320508}
	return []gradCase{
		{"RMSNorm", rmsNormKernel(6, 1e-6), [][]int{{5, 6}, {6}}, []float64{0, 1}},
		{"LayerNorm", layerNormKernel(6, 1e-5), [][]int{{5, 6}, {6}, {6}}, []float64{0.5, 1, 0}},
		{"AddBias", biasKernel(6), [][]int{{5, 6}, {6}}, []float64{0, 0}},
		{"SwiGLU", swiGLUKernel(), [][]int{{5, 6}, {5, 6}}, []float64{0, 0}},
		{"GeluTanh", geluKernel(), [][]int{{5, 6}}, []float64{0}},
		// two rows of 5 tokens, rotary, 4 heads reading 2 key/value heads
		{"AttentionRopeGQA", attentionKernel(llamaGQA, 5), [][]int{{10, 16}, {10, 8}, {10, 8}}, []float64{0, 0, 0}},
		{"AttentionMHA", attentionKernel(mha, 4), [][]int{{8, 6}, {8, 6}, {8, 6}}, []float64{0, 0, 0}},
	}
}

// TestGradients checks every custom op's gradient, wired through gorgonia's
// Grad and TapeMachine in float64, against central finite differences of
// the cost Σ op(inputs)·R for a random R.
func TestGradients(t *testing.T) {
	for _, tc := range gradCases() {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			g := G.NewGraph()
			var nodes G.Nodes
			var vals [][]float64
			for i, s := range tc.shapes {
				n := tensor.Shape(s).TotalSize()
				v := randn(rng, n, tc.means[i], 1)
				if i > 0 && tc.means[i] == 1 {
					v = randn(rng, n, 1, 0.3)
				}
				vals = append(vals, v)
				val := tensor.New(tensor.WithShape(s...), tensor.WithBacking(append([]float64(nil), v...)))
				nodes = append(nodes, G.NewTensor(g, tensor.Float64, len(s), G.WithShape(s...), G.WithValue(val), G.WithName(fmt.Sprint("in", i))))
			}
			out, err := tc.k.apply(nodes...)
			if err != nil {
				t.Fatal(err)
			}
			rv := randn(rng, out.Shape().TotalSize(), 0, 1)
			r := G.NewTensor(g, tensor.Float64, out.Dims(), G.WithShape(out.Shape()...), G.WithName("r"),
				G.WithValue(tensor.New(tensor.WithShape(out.Shape()...), tensor.WithBacking(rv))))
			prod, err := G.HadamardProd(out, r)
			if err != nil {
				t.Fatal(err)
			}
			cost, err := G.Sum(prod)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := G.Grad(cost, nodes...); err != nil {
				t.Fatal(err)
			}
			vm := G.NewTapeMachine(g, G.BindDualValues(nodes...))
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			f := func() float64 {
				y := make([]float64, len(rv))
				tc.k.f64.fwd(vals, y)
				var s float64
				for i, v := range y {
					s += v * rv[i]
				}
				return s
			}
			if c := scalar(cost.Value()); math.Abs(c-f()) > 1e-9*math.Max(1, math.Abs(c)) {
				t.Fatalf("graph cost %v, kernel cost %v", c, f())
			}
			const h = 1e-5
			for i, n := range nodes {
				gv, err := n.Grad()
				if err != nil {
					t.Fatalf("input %d: %v", i, err)
				}
				got := gv.Data().([]float64)
				var worst float64
				for j := range vals[i] {
					old := vals[i][j]
					vals[i][j] = old + h
					fp := f()
					vals[i][j] = old - h
					fm := f()
					vals[i][j] = old
					want := (fp - fm) / (2 * h)
					worst = math.Max(worst, math.Abs(got[j]-want)/math.Max(1, math.Abs(want)))
				}
				if worst > 1e-6 {
					t.Errorf("input %d: gradient differs from finite differences by %.2g (relative)", i, worst)
				}
			}
		})
	}
}
