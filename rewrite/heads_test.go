package rewrite_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"google.golang.org/protobuf/proto"
)

// headModels are the layouts head pruning must keep valid: the width layouts
// (MHA Llama in both weight orientations and float16, GQA with a KV cache,
// GPT-2's packed qkv with and without a KV cache), GQA without a cache, and
// the shared models (llama8 and gpt2_6 MHA, tiny_llama_kv GQA with a cache).
func headModels(t *testing.T) map[string]func(t *testing.T) (*pb.ModelProto, *discover.Stack) {
	ms := map[string]func(t *testing.T) (*pb.ModelProto, *discover.Stack){}
	gen := func(c modelgen.Config) func(t *testing.T) (*pb.ModelProto, *discover.Stack) {
		return func(t *testing.T) (*pb.ModelProto, *discover.Stack) { return testmodel.Generated(t, c) }
	}
	for name, c := range widthConfigs {
		ms[name] = gen(c)
	}
	ms["llama_gqa"] = gen(modelgen.Config{Arch: modelgen.Llama, Layers: 2, Hidden: 32, Heads: 8, KVHeads: 2, FFN: 24, Seed: 7})
	file := func(path func(t *testing.T) string) func(t *testing.T) (*pb.ModelProto, *discover.Stack) {
		return func(t *testing.T) (*pb.ModelProto, *discover.Stack) {
			m, err := onnx.Load(path(t))
			if err != nil {
				t.Fatal(err)
			}
			s, err := discover.Find(m.Proto)
			if err != nil {
				t.Fatal(err)
			}
			return m.Proto, s
		}
	}
	for _, name := range []string{"llama8", "gpt2_6"} {
		ms[name] = file(func(t *testing.T) string { return testenv.TestModel(t, name) })
	}
	ms["tiny_llama_kv"] = file(func(t *testing.T) string {
		return filepath.Join(testenv.RepoRoot(t), "testdata", "models", "tiny_llama_kv.onnx")
	})
	return ms
}

// headKeeps are the head choices tried on an attention: whole KV groups
// (every other group from the second), and with grouped-query attention the
// first query head of every group.
func headKeeps(a *discover.Attention) map[string][]int {
	G := a.Heads / a.KVHeads
	var groups, within []int
	for h := 0; h < a.Heads; h++ {
		if g := h / G; g%2 == 1 || g == 0 && a.KVHeads == 1 {
			groups = append(groups, h)
		}
		if h%G == 0 {
			within = append(within, h)
		}
	}
	keeps := map[string][]int{"groups": groups}
	if G > 1 {
		keeps["within"] = within
	}
	return keeps
}

// TestHeadsEqualsZeroedHeads: removing query heads (no compensation)
// computes what the original computes with those heads' o rows set to zero,
// in every layout; whole KV groups take their k and v columns and KV-cache
// heads with them; the parameter count falls by the heads' share; the result
// is rediscovered with its new head counts.
func TestHeadsEqualsZeroedHeads(t *testing.T) {
	for name, get := range headModels(t) {
		t.Run(name, func(t *testing.T) {
			m, s := get(t)
			a := s.Layers[0].Attention
			if a == nil {
				t.Fatal("no attention shape found")
			}
			for kind, keep := range headKeeps(a) {
				t.Run(kind, func(t *testing.T) {
					ref := m
					var plan rewrite.WidthPlan
					var qf []int
					for _, h := range keep {
						for j := 0; j < a.HeadDim; j++ {
							qf = append(qf, h*a.HeadDim+j)
						}
					}
					for li := range s.Layers {
						plan.Heads = append(plan.Heads, rewrite.AttnHeads{Layer: li, Keep: keep})
						_, _, _, _, o, _, err := rewrite.AttnProjections(&s.Layers[li])
						if err != nil {
							t.Fatal(err)
						}
						ref = zeroInputRows(t, ref, &s.Layers[li], o, qf)
					}
					res, err := rewrite.Width(m, s, plan, rewrite.Options{Check: true})
					if err != nil {
						t.Fatal(err)
					}
					G := a.Heads / a.KVHeads
					kv := 0
					for g := 0; g < a.KVHeads; g++ {
						for _, h := range keep {
							if h/G == g {
								kv++
								break
							}
						}
					}
					want := discover.Attention{Heads: len(keep), KVHeads: kv, HeadDim: a.HeadDim}
					for _, c := range res.Changes {
						if c.Heads == nil || c.Heads.After != want.Heads || c.Heads.KVAfter != want.KVHeads || c.Heads.Shapes == 0 {
							t.Errorf("layer %d: change %+v", c.Layer, c.Heads)
						}
					}
					if kind == "groups" {
						per, err := rewrite.HeadParams(&s.Layers[0])
						if err != nil {
							t.Fatal(err)
						}
						before, _ := onnx.Parameters(m)
						after, _ := onnx.Parameters(res.Model)
						if d := before - after; d != int64(len(s.Layers))*per*int64(a.Heads-len(keep)) {
							t.Errorf("parameters %d → %d (%d removed), want %d per head", before, after, d, per)
						}
					}
					s2, err := discover.Find(res.Model)
					if err != nil {
						t.Fatalf("head-pruned model: %v", err)
					}
					for i, l := range s2.Layers {
						if l.Attention == nil || *l.Attention != want {
							t.Errorf("layer %d: attention %+v, want %+v", i, l.Attention, want)
						}
					}
					sameLogits(t, res.Model, ref, s.Logits)
				})
			}
		})
	}
}

// TestHeadsRefuses: head plans Width cannot build are refused, and the
// model is not changed: KV groups keeping different numbers of query heads,
// heads out of range, and onnxruntime-genai's fused GroupQueryAttention
// (whose num_heads attributes the pass does not rewrite), by name.
func TestHeadsRefuses(t *testing.T) {
	gqa, gs := testmodel.Generated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 2, Hidden: 32, Heads: 8, KVHeads: 2, FFN: 24, Seed: 7})
	genai, _, ns := buildGenAI(t, genaiCases[0].config())
	for _, c := range []struct {
		name string
		m    *pb.ModelProto
		s    *discover.Stack
		keep []int
		want string
	}{
		{"uneven groups", gqa, gs, []int{0, 1, 4}, "same number"},
		{"out of range", gqa, gs, []int{0, 8}, "ascending and in [0, 8)"},
		{"none", gqa, gs, nil, "keeps no head"},
		{"fused", genai, ns, []int{0}, "GroupQueryAttention"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(c.m)
			_, err := rewrite.Width(c.m, c.s, rewrite.WidthPlan{Heads: []rewrite.AttnHeads{{Layer: 0, Keep: c.keep}}}, rewrite.Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
			if snapshot(c.m) != before {
				t.Error("the model was modified")
			}
		})
	}
}

// TestHeadsKVCacheRunsInORT: head-pruned KV-cache models (GQA losing a whole
// KV group or a query head of each group, GPT-2 losing a head) pass the ONNX
// checker and decode with a non-empty past in onnxruntime, the cache of the
// new head count, with the logits of the full run.
func TestHeadsKVCacheRunsInORT(t *testing.T) {
	ort := judge.ORT(t)
	checker := judge.Checker(t)
	for _, c := range []struct {
		name string
		cfg  modelgen.Config
		keep []int
	}{
		{"gqa/groups", modelgen.Config{Arch: modelgen.Llama, Layers: 3, Hidden: 16, Heads: 4, KVHeads: 2, KVCache: true, AttentionMask: true, MaxPos: 32}, []int{2, 3}},
		{"gqa/within", modelgen.Config{Arch: modelgen.Llama, Layers: 3, Hidden: 16, Heads: 4, KVHeads: 2, KVCache: true, AttentionMask: true, MaxPos: 32}, []int{1, 3}},
		{"gpt2", modelgen.Config{Arch: modelgen.GPT2, Layers: 3, Hidden: 16, Heads: 4, KVCache: true, AttentionMask: true, MaxPos: 32}, []int{0, 1, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, s := testmodel.Generated(t, c.cfg)
			var plan rewrite.WidthPlan
			for li := range s.Layers {
				plan.Heads = append(plan.Heads, rewrite.AttnHeads{Layer: li, Keep: c.keep})
			}
			res, err := rewrite.Width(m, s, plan, rewrite.Options{Check: true})
			if err != nil {
				t.Fatal(err)
			}
			cachedDecoding(t, ort, checker, res.Model)
		})
	}
}

// TestHeadsDeterministic: cutting the same heads twice writes the same model,
// byte for byte. (A GQA cut changes two parts of one Concat shape; their new
// constants were once added in map order, so runs differed in names and order.)
func TestHeadsDeterministic(t *testing.T) {
	for name, get := range headModels(t) {
		t.Run(name, func(t *testing.T) {
			m, s := get(t)
			for kind, keep := range headKeeps(s.Layers[0].Attention) {
				var plan rewrite.WidthPlan
				for li := range s.Layers {
					plan.Heads = append(plan.Heads, rewrite.AttnHeads{Layer: li, Keep: keep})
				}
				var first []byte
				for run := range 6 {
					res, err := rewrite.Width(m, s, plan, rewrite.Options{})
					if err != nil {
						t.Fatalf("%s: %v", kind, err)
					}
					b, err := proto.MarshalOptions{Deterministic: true}.Marshal(res.Model)
					if err != nil {
						t.Fatal(err)
					}
					if run == 0 {
						first = b
					} else if !bytes.Equal(b, first) {
						t.Fatalf("%s: run %d wrote a different model than run 0", kind, run)
					}
				}
			}
		})
	}
}
