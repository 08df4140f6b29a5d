package rewrite_test

import (
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/rewrite"
)

// TestJudgeTransformersJSFloat16Rewrite: transformers.js's model_fp16 and
// model_q4f16 (float32 I/O through Casts; the shared past-length Shape reads
// layer 0's Cast of its past key) rewritten by a plan give, in onnxruntime,
// the logits of the float32 model rewritten by the same plan (model.onnx,
// model_q4.onnx) within float16's error.
func TestJudgeTransformersJSFloat16Rewrite(t *testing.T) {
	ort := judge.ORT(t)
	c := modelgen.Config{Arch: modelgen.Llama, Layers: 4, Hidden: 64, Heads: 4, KVHeads: 2, FFN: 96, KVCache: true,
		AttentionMask: true, TransposedWeights: true, Seed: 23}
	g := modelgen.GenAIConfig{Hidden: 64, Heads: 4, KVHeads: 2}
	for _, v := range []struct{ half, full string }{
		{modelgen.TransformersJSFP16, ""}, {modelgen.TransformersJSQ4F16, modelgen.TransformersJSQ4},
	} {
		m, err := modelgen.BuildTransformersJS(c, v.half)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := modelgen.Build(c)
		if v.full != "" {
			ref, err = modelgen.BuildTransformersJS(c, v.full)
		}
		if err != nil {
			t.Fatal(err)
		}
		s, rs := testmodel.Find(t, m), testmodel.Find(t, ref)
		for _, p := range []int{1, 2} { // mean merge 0..1, drop 0
			pl := genaiPlans[p]
			t.Run(v.half+"/"+pl.name, func(t *testing.T) {
				res, err := rewrite.Merge(m, s, pl.plan, rewrite.Options{Check: true})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := discover.Find(res.Model); err != nil {
					t.Fatalf("rewritten model: %v", err)
				}
				r, err := rewrite.Merge(ref, rs, pl.plan, rewrite.Options{Check: true})
				if err != nil {
					t.Fatal(err)
				}
				feeds := pastFeeds(t, len(res.KeptFrom), g, 4, []int64{3, 17, 42})
				got, want := runBoth(t, ort, res.Model, r.Model, feeds, feeds, []string{"logits"})
				a, _ := got["logits"].Float32s()
				b, _ := want["logits"].Float32s()
				d := relMax(a, b)
				t.Logf("max |float16 − float32| / max = %.3g, rms %.3g", d, stats.RelRMS(a, b))
				// float16 activations and weights (modelgen measured 7e-4
				// unedited; the genai fp16 model accepts 2e-2).
				if d > 2e-2 {
					t.Errorf("max |float16 − float32| / max = %.3g, want ≤ 2e-2", d)
				}
			})
		}
	}
}
