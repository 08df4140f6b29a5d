package rewrite_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/rewrite"
)

// The transformer optimizer's GPT-2 (modelgen.BuildOptimizedGPT2): its
// boundary SkipLayerNormalizations add the branch's bias (input 4), which
// goes with the layer below when layers are removed or merged.
var optGPT2 = modelgen.OptimizedGPT2Twin(4, 64, 4, 7, 14)

// TestOptimizedGPT2RewriteStructure: after each plan the model is again the
// optimizer's layout: the first kept layer's input norm a LayerNormalization
// of the embeddings, the others SkipLayerNormalization with a bias, pasts
// renumbered past_0..past_{L'−1}.
func TestOptimizedGPT2RewriteStructure(t *testing.T) {
	m, err := modelgen.BuildOptimizedGPT2(optGPT2)
	if err != nil {
		t.Fatal(err)
	}
	s := testmodel.Find(t, m)
	if len(s.BranchBias) != 5 || s.BranchBias[0] != "" || s.BranchBias[4] != "transformer.h.3.mlp.c_proj.bias" {
		t.Fatalf("branch biases %q", s.BranchBias)
	}
	for _, p := range genaiPlans {
		t.Run(p.name, func(t *testing.T) {
			res, err := rewrite.Merge(m, s, p.plan, rewrite.Options{Check: true})
			if err != nil {
				t.Fatal(err)
			}
			s2 := testmodel.Find(t, res.Model)
			L := len(res.KeptFrom)
			if s2.NumLayers() != L {
				t.Fatalf("%d layers, want %d", s2.NumLayers(), L)
			}
			for _, l := range s2.Layers {
				in := res.Model.Graph.Node[l.Norms[0].Node]
				want, inputs := "SkipLayerNormalization", 5
				if l.Index == 0 {
					want, inputs = "LayerNormalization", 3
				}
				if in.GetOpType() != want || len(in.Input) != inputs {
					t.Errorf("layer %d's input norm is %s of %d inputs, want %s of %d", l.Index, in.GetOpType(), len(in.Input), want, inputs)
				}
				if len(l.Past) != 1 || l.Past[0] != fmt.Sprintf("past_%d", l.Index) {
					t.Errorf("layer %d reads %q", l.Index, l.Past)
				}
			}
		})
	}
}

// optFeeds are the same inputs for the optimized model (past_i
// [2, 1, heads, P, head size]) and its twin (past_key_values.i.key/value).
func optFeeds(t *testing.T, layers, P int, tokens []int64) (opt, twin map[string]*npy.Array) {
	t.Helper()
	c := optGPT2
	r := rand.New(rand.NewPCG(uint64(P), 11))
	ids := must(npy.New([]int{1, len(tokens)}, tokens))
	mask := make([]int64, P+len(tokens))
	for i := range mask {
		mask[i] = 1
	}
	pos := make([]int64, len(tokens))
	for i := range pos {
		pos[i] = int64(P + i)
	}
	opt = map[string]*npy.Array{"input_ids": ids, "attention_mask": must(npy.New([]int{1, len(mask)}, mask)),
		"position_ids": must(npy.New([]int{1, len(pos)}, pos))}
	twin = map[string]*npy.Array{}
	for k, v := range opt {
		twin[k] = v
	}
	hd := c.Hidden / c.Heads
	for i := 0; i < layers; i++ {
		var both []float32
		for _, kv := range []string{"key", "value"} {
			data := make([]float32, c.Heads*P*hd)
			for j := range data {
				data[j] = float32(r.NormFloat64())
			}
			twin[fmt.Sprintf("past_key_values.%d.%s", i, kv)] = must(npy.New([]int{1, c.Heads, P, hd}, data))
			both = append(both, data...)
		}
		opt[fmt.Sprintf("past_%d", i)] = must(npy.New([]int{2, 1, c.Heads, P, hd}, both))
	}
	return opt, twin
}

// TestJudgeOptimizedGPT2Rewrite: onnxruntime runs each rewritten optimizer
// model over a past and gives the logits and presents of the plain twin
// rewritten by the same plan.
func TestJudgeOptimizedGPT2Rewrite(t *testing.T) {
	ort := judge.ORT(t)
	m, err := modelgen.BuildOptimizedGPT2(optGPT2)
	if err != nil {
		t.Fatal(err)
	}
	s := testmodel.Find(t, m)
	twin, ts := testmodel.Generated(t, optGPT2)
	for _, p := range genaiPlans {
		t.Run(p.name, func(t *testing.T) {
			res, ref := mergeBoth(t, m, s, twin, ts, p.plan)
			L := len(res.KeptFrom)
			of, tf := optFeeds(t, L, 5, []int64{3, 17, 42})
			got, want := runBoth(t, ort, res.Model, ref.Model, of, tf, nil)
			f32 := func(a *npy.Array) []float32 {
				v, err := a.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			d := relMax(f32(got["logits"]), f32(want["logits"]))
			t.Logf("max |optimized − twin| / max |twin| = %.3g", d)
			if d > 1e-5 {
				t.Errorf("logits: max |optimized − twin| / max |twin| = %.3g, want ≤ 1e-5", d)
			}
			for i := 0; i < L; i++ {
				kv := append(f32(want[fmt.Sprintf("present.%d.key", i)]), f32(want[fmt.Sprintf("present.%d.value", i)])...)
				if d := relMax(f32(got[fmt.Sprintf("present_%d", i)]), kv); d > 1e-5 {
					t.Errorf("present_%d: %.3g from the twin's key and value", i, d)
				}
			}
		})
	}
}
