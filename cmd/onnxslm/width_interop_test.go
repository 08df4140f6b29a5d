package main

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/npy"
)

// TestInteropWidthPruned: what `prune --params-ratio` writes for the shared
// models (width only, depth and width half and half, and width with one
// attention head of four removed from every layer) passes the ONNX checker,
// and onnxruntime gives it the eval_go perplexity `onnxslm eval` reports,
// within 0.05 %.
func TestInteropWidthPruned(t *testing.T) {
	ort := judge.ORT(t)
	chk := judge.Checker(t)
	calib := testenv.TestFile(t, "tokens/calib_train_16x128.npy")
	evalGo := testenv.TestFile(t, "tokens/eval_go_64x256.npy")
	ids, err := npy.Read(evalGo)
	if err != nil {
		t.Fatal(err)
	}
	cases := [][]string{{"--width-ratio", "1", "--width-heads", "0"}, {"--width-ratio", "0.5", "--width-heads", "0"}, {"--width-ratio", "1", "--width-heads", "1"}}
	if testing.Short() {
		cases = cases[2:]
	}
	for _, name := range []string{"llama8", "gpt2_6"} {
		for _, c := range cases {
			t.Run(name+"/"+strings.Join(c, " "), func(t *testing.T) {
				in := testenv.TestModel(t, name)
				out := filepath.Join(t.TempDir(), name+"_w.onnx")
				args := append([]string{"prune", in, out, "-q", "--params-ratio", "0.25", "--calib", calib}, c...)
				if code, _, stderr := runCLI(t, args...); code != 0 {
					t.Fatalf("prune: exit %d: %s", code, stderr)
				}
				checkModel(t, chk, out)
				code, stdout, stderr := runCLI(t, "eval", out, "--tokens", evalGo, "--json")
				if code != 0 {
					t.Fatalf("eval: exit %d: %s", code, stderr)
				}
				var ev struct {
					Perplexity float64 `json:"perplexity"`
				}
				if err := json.Unmarshal([]byte(stdout), &ev); err != nil {
					t.Fatal(err)
				}
				m := testmodel.Load(t, out)
				st, err := discover.Find(m.Proto)
				if err != nil {
					// Per-layer widths that differ are not a stack discover accepts; the logits are the graph's output.
					st = &discover.Stack{Tokens: "input_ids", Logits: "logits"}
				}
				res, err := ort.Run(out, map[string]*npy.Array{st.Tokens: ids}, []string{st.Logits})
				if err != nil {
					t.Fatal(err)
				}
				got := ortPerplexity(t, ids, res[st.Logits])
				if rel := math.Abs(got-ev.Perplexity) / ev.Perplexity; rel > 5e-4 {
					t.Errorf("onnxruntime eval_go perplexity %.6f, onnxslm eval %.6f (off by %.3f %%)", got, ev.Perplexity, 100*rel)
				}
			})
		}
	}
}

// ortPerplexity is exp(mean next-token NLL) of logits [N, T, V] for ids [N, T].
func ortPerplexity(t *testing.T, ids, logits *npy.Array) float64 {
	t.Helper()
	tok, err := ids.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	lg, err := logits.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	n, T := ids.Shape[0], ids.Shape[1]
	V := logits.Shape[2]
	var sum float64
	for r := 0; r < n; r++ {
		for p := 0; p+1 < T; p++ {
			row := lg[(r*T+p)*V : (r*T+p+1)*V]
			sum += lm.LogSumExp(row) - float64(row[tok[r*T+p+1]])
		}
	}
	return math.Exp(sum / float64(n*(T-1)))
}

// TestInteropWidthPrunedKVCache: a width-pruned KV-cache model (GQA, the
// committed tiny_llama_kv fixture; MLP channels only, and channels with one
// KV group of two removed from every layer, which halves the cache's heads)
// runs in onnxruntime with a non-empty past; decoding with the cache gives
// the logits of the full run, and the Go runtime gives onnxruntime's logits.
func TestInteropWidthPrunedKVCache(t *testing.T) {
	ort := judge.ORT(t)
	chk := judge.Checker(t)
	for _, heads := range []string{"0", "2"} {
		t.Run("width-heads="+heads, func(t *testing.T) { widthKVCase(t, ort, chk, heads) })
	}
}

func widthKVCase(t *testing.T, ort *judge.Runtime, chk *judge.Check, heads string) {
	in := filepath.Join("..", "..", "testdata", "models", "tiny_llama_kv.onnx")
	out := filepath.Join(t.TempDir(), "kv_w.onnx")
	if code, _, stderr := runCLI(t, "prune", in, out, "-q", "--params-ratio", "0.3", "--width-ratio", "1", "--width-heads", heads); code != 0 {
		t.Fatalf("prune: exit %d: %s", code, stderr)
	}
	checkModel(t, chk, out)
	m := testmodel.Load(t, out)
	// The widths chosen may differ by layer, which discover does not accept
	// as a stack: the cache's inputs and outputs are found by name.
	var pastNames []string
	presentOf := map[string]string{}
	for _, x := range m.Proto.Graph.Input {
		if n := x.GetName(); strings.HasPrefix(n, "past_key_values.") {
			pastNames = append(pastNames, n)
			presentOf[n] = "present." + strings.TrimPrefix(n, "past_key_values.")
		}
	}
	if len(pastNames) == 0 {
		t.Fatalf("no KV cache in the pruned model")
	}
	const logits = "logits"
	r := rand.New(rand.NewPCG(5, 6))
	const past, first = 3, 3
	ids := []int64{5, 9, 2, 7, 11}
	feeds := func(tok []int64, pastLen int, pasts map[string]*npy.Array) map[string]*npy.Array {
		f := map[string]*npy.Array{"input_ids": must(npy.New([]int{1, len(tok)}, tok))}
		mask := make([]int64, pastLen+len(tok))
		pos := make([]int64, len(tok))
		for i := range mask {
			mask[i] = 1
		}
		for i := range pos {
			pos[i] = int64(pastLen + i)
		}
		f["attention_mask"] = must(npy.New([]int{1, len(mask)}, mask))
		f["position_ids"] = must(npy.New([]int{1, len(pos)}, pos))
		for k, v := range pasts {
			f[k] = v
		}
		return f
	}
	pasts := map[string]*npy.Array{}
	for _, name := range pastNames {
		pasts[name] = testmodel.RandomPast(t, m.Proto, name, past, r)
		if h := pasts[name].Shape[1]; heads != "0" && h != 1 {
			t.Errorf("%s: %d KV heads declared, want 1 of 2", name, h)
		}
	}
	full, err := ort.Run(out, feeds(ids, past, pasts), nil)
	if err != nil {
		t.Fatal(err)
	}
	goLogits := goRun(t, out, feeds(ids, past, pasts), logits)
	fl, _ := full[logits].Float32s()
	if d := relDiff(t, goLogits.Float32Data(), fl); d > interopTol {
		t.Errorf("Go runtime's logits differ from onnxruntime's by %g (relative)", d)
	}
	step1, err := ort.Run(out, feeds(ids[:first], past, pasts), nil)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]*npy.Array{}
	for _, name := range pastNames {
		next[name] = step1[presentOf[name]]
	}
	step2, err := ort.Run(out, feeds(ids[first:], past+first, next), nil)
	if err != nil {
		t.Fatal(err)
	}
	sl, _ := step2[logits].Float32s()
	V := full[logits].Shape[2]
	if d := relDiff(t, sl, fl[first*V:]); d > interopTol {
		t.Errorf("cached decoding differs from the full run by %g (relative)", d)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
