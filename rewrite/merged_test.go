package rewrite_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/slm"
)

// TestMergeBranches merges layers 1..2 of a merged decoder with a repair on
// a projection whose slot number differs between the branches: both
// branches must read the same (repaired) tensors, once in the outer graph,
// and the with-past branch continue what the no-past one computes.
func TestMergeBranches(t *testing.T) {
	m, pair := testmodel.MergedPair(t, modelgen.Config{Arch: modelgen.Llama, Layers: 4, Hidden: 32, Heads: 4, KVHeads: 2, Seed: 4,
		KVCache: true, AttentionMask: true, TransposedWeights: true})
	br, err := discover.FindMerged(pair)
	if err != nil {
		t.Fatal(err)
	}
	var repair *rewrite.Repair
	for _, p := range br.NoPast.Layers[1].Projections {
		if s := p.Weights[0].Slot; br.Slot[s] != s {
			mat := make([]float32, p.Out*p.Out)
			for i := range p.Out {
				mat[i*p.Out+i] = 1
				mat[i*p.Out+(i+1)%p.Out] = 0.25
			}
			repair = &rewrite.Repair{Slot: s, Matrix: mat}
			break
		}
	}
	if repair == nil {
		t.Fatal("no projection whose slot differs between the branches")
	}
	plan := rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}, Repair: repair}}}
	res, err := rewrite.MergeBranches(m, pair, br, plan, rewrite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.LayersAfter != 3 || !slices.Equal(res.KeptFrom, []int{0, 1, 3}) || !merged.Is(res.Model) {
		t.Fatalf("%d layers from %v", res.LayersAfter, res.KeptFrom)
	}
	halves, err := merged.Split(res.Model)
	if err != nil {
		t.Fatal(err)
	}
	weights := func(g []string) []string { return slices.Sorted(slices.Values(g)) }
	var a, b []string
	for _, w := range halves.NoPast.Graph.Initializer {
		if len(w.GetDims()) > 1 {
			a = append(a, w.GetName())
		}
	}
	for _, w := range halves.WithPast.Graph.Initializer {
		if len(w.GetDims()) > 1 {
			b = append(b, w.GetName())
		}
	}
	if strings.Join(weights(a), " ") != strings.Join(weights(b), " ") {
		t.Errorf("the branches read different weights:\n %v\n %v", weights(a), weights(b))
	}
	outer := 0
	for _, w := range res.Model.Graph.Initializer {
		if len(w.GetDims()) > 1 {
			outer++
		}
	}
	if outer != len(a) {
		t.Errorf("%d matrices in the outer graph, the branches read %d", outer, len(a))
	}

	s, err := runtime.New(res.Model, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	row := []int64{5, 17, 200, 3, 99, 42, 7, 8}
	T := len(row)
	run := runner(t, s, nil)
	full := run(lm.Feeds(s, [][]int64{row}))
	pre := run(lm.Feeds(s, [][]int64{row[:T-1]}))
	past := map[string]*runtime.Tensor{}
	for name, v := range pre {
		past[strings.Replace(name, "present", "past_key_values", 1)] = v
	}
	step := run(lm.FeedsAfter(s, [][]int64{row[T-1:]}, T-1, past))
	fl, sl := full["logits"].Float32Data(), step["logits"].Float32Data()
	d := stats.MaxAbsDiff(fl[(T-1)*len(sl):], sl)
	if d > 1e-4 {
		t.Errorf("with past: last token's logits %.3g from the no-past run's", d)
	}
}
