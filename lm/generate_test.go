package lm_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/internal/testsession"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokenizer"
)

// genModel is a model to generate with: a file and its session.
type genModel struct {
	name, path string
	s          *runtime.Session
	kv         bool
}

// genModels are the shared models (no KV cache), the KV-cache fixture
// (optimum-style Llama, grouped-query attention) and a GPT-2 with a KV cache
// built for the test.
func genModels(t *testing.T) []genModel {
	t.Helper()
	gpt2 := modelgen.Config{Arch: modelgen.GPT2, Layers: 2, Hidden: 32, Heads: 4, Vocab: 256, MaxPos: 64,
		KVCache: true, AttentionMask: true, Opset: 17, Seed: 9, TransposedWeights: true}
	m, err := modelgen.Build(gpt2)
	if err != nil {
		t.Fatal(err)
	}
	gpt2Path := testmodel.Write(t, filepath.Join(t.TempDir(), "gpt2_kv.onnx"), m)
	var out []genModel
	for _, g := range []genModel{
		{name: "llama8", path: testenv.TestModel(t, "llama8")},
		{name: "gpt2_6", path: testenv.TestModel(t, "gpt2_6")},
		{name: "tiny_llama_kv", path: filepath.Join(testenv.RepoRoot(t), "testdata", "models", "tiny_llama_kv.onnx"), kv: true},
		{name: "gpt2_kv", path: gpt2Path, kv: true},
	} {
		mm, err := onnx.Load(g.path)
		if err != nil {
			t.Fatal(err)
		}
		if g.s, err = runtime.New(mm.Proto, runtime.Options{}); err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	return out
}

var prompt = byteIDs("func main() {\n\t")

// byteIDs is s in the byte-level ids of the shared test models.
func byteIDs(s string) []int64 {
	ids, _ := tokenizer.Bytes().Encode(s) // never fails
	return ids
}

// TestGenerateCacheSameTokens: greedy decoding with the KV cache gives the
// tokens of decoding without it, and uses the cache exactly where the model
// has one.
func TestGenerateCacheSameTokens(t *testing.T) {
	for _, g := range genModels(t) {
		t.Run(g.name, func(t *testing.T) {
			with, err := lm.Generate(context.Background(), g.s, prompt, lm.GenerateOptions{MaxNewTokens: 12})
			if err != nil {
				t.Fatal(err)
			}
			without, err := lm.Generate(context.Background(), g.s, prompt, lm.GenerateOptions{MaxNewTokens: 12, NoCache: true})
			if err != nil {
				t.Fatal(err)
			}
			if with.Cached != g.kv || without.Cached {
				t.Errorf("Cached = %v, %v; want %v, false", with.Cached, without.Cached, g.kv)
			}
			if len(with.Tokens) != 12 || !slices.Equal(with.Tokens, without.Tokens) {
				t.Errorf("with the cache %v, without %v", with.Tokens, without.Tokens)
			}
			t.Logf("%q; prefill %.0f tokens/s, decode %.0f tokens/s", bytesOf(with.Tokens), with.PrefillTokensPerSecond(), with.DecodeTokensPerSecond())
		})
	}
}

func bytesOf(ids []int64) string {
	b := make([]byte, len(ids))
	for i, id := range ids {
		b[i] = byte(id)
	}
	return string(b)
}

// TestGenerateSampling: sampling is reproducible from its seed, and at a
// temperature near 0 it is greedy decoding.
func TestGenerateSampling(t *testing.T) {
	s := testsession.Shared(t, "llama8")
	run := func(opts lm.GenerateOptions) []int64 {
		t.Helper()
		opts.MaxNewTokens = 16
		g, err := lm.Generate(context.Background(), s, prompt, opts)
		if err != nil {
			t.Fatal(err)
		}
		return g.Tokens
	}
	a := run(lm.GenerateOptions{Temperature: 1, Seed: 7})
	if b := run(lm.GenerateOptions{Temperature: 1, Seed: 7}); !slices.Equal(a, b) {
		t.Errorf("seed 7 twice: %v and %v", a, b)
	}
	greedy := run(lm.GenerateOptions{})
	if cold := run(lm.GenerateOptions{Temperature: 1e-6, Seed: 3}); !slices.Equal(cold, greedy) {
		t.Errorf("temperature 1e-6 gives %v, greedy %v", cold, greedy)
	}
	differ := false
	for seed := uint64(0); seed < 4 && !differ; seed++ {
		differ = !slices.Equal(run(lm.GenerateOptions{Temperature: 1.5, Seed: seed}), greedy)
	}
	if !differ {
		t.Error("sampling at temperature 1.5 gave the greedy tokens for 4 seeds")
	}
	for _, bad := range []lm.GenerateOptions{{Temperature: -1}, {MaxLength: 3}} {
		if _, err := lm.Generate(context.Background(), s, prompt, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestGenerateAgainstORT: onnxruntime decoding the same prompt greedily
// (tools/judges/ort_lm.js, the whole sequence at every step) gives the same
// tokens as Generate with the KV cache.
func TestGenerateAgainstORT(t *testing.T) {
	ort := judge.ORT(t)
	for _, g := range genModels(t) {
		t.Run(g.name, func(t *testing.T) {
			const n = 12
			got, err := lm.Generate(context.Background(), g.s, prompt, lm.GenerateOptions{MaxNewTokens: n})
			if err != nil {
				t.Fatal(err)
			}
			req := map[string]any{
				"model":  g.path,
				"greedy": map[string]any{"prompt": prompt, "max_new_tokens": n},
				"past":   pastShapes(t, g.s),
			}
			var ans struct {
				Greedy []int64 `json:"greedy"`
			}
			if err := ort.Script("ort_lm.js", req, &ans); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Tokens, ans.Greedy) {
				t.Errorf("Go %v (%q), onnxruntime %v (%q)", got.Tokens, bytesOf(got.Tokens), ans.Greedy, bytesOf(ans.Greedy))
			}
		})
	}
}

// pastShapes gives each past input an empty shape [1, heads, 0, size].
func pastShapes(t *testing.T, s *runtime.Session) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	kv := lm.FindKVCache(s)
	if kv == nil {
		return out
	}
	for _, in := range s.Inputs() {
		if !slices.Contains(kv.Past, in.Name) {
			continue
		}
		if len(in.Shape) != 4 || in.Shape[1].Size <= 0 || in.Shape[3].Size <= 0 {
			t.Fatalf("%s: shape %v, want static heads and size", in.Name, in.Shape)
		}
		out[in.Name] = []int{1, in.Shape[1].Size, 0, in.Shape[3].Size}
	}
	if len(out) == 0 {
		t.Fatal(fmt.Sprint("no past inputs in ", kv.Past))
	}
	return out
}

// TestMaxPositions: GPT-2's learned position table bounds its input;
// llama8 has no metadata and no learned table (its RoPE tables are not
// recognised), so no limit is known.
func TestMaxPositions(t *testing.T) {
	for _, tc := range []struct {
		name string
		want int
	}{{"gpt2_6", 256}, {"llama8", 0}} {
		if got := lm.MaxPositions(testsession.Shared(t, tc.name)); got != tc.want {
			t.Errorf("%s: MaxPositions = %d, want %d", tc.name, got, tc.want)
		}
	}
}
