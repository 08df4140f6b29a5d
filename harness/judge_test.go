package harness_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/harness"
	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testsession"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokenizer"
)

// handMade are examples written for the test: contexts with and without
// trailing whitespace (which the harness moves into the continuation),
// choices of different lengths (so acc and acc_norm can disagree).
var handMade = []harness.Example{
	{Context: "func main() {\n\tfmt.", Choices: []string{"Println(x)", "Printf", "os.Exit(1) // done"}, Gold: 0},
	{Context: "for i := 0; i < n; ", Choices: []string{"i++ {", "return nil", "x"}, Gold: 0},
	{Context: "if err != nil {\n\treturn ", Choices: []string{"nil, err", "err", "}"}, Gold: 1},
	{Context: "package main\n\nimport ", Choices: []string{`"fmt"`, "(", "the quick brown fox"}, Gold: 0},
	{Context: "// Copyright 2011 The Go Authors.", Choices: []string{"All rights reserved.", "zzz", "\n"}, Gold: 0},
	{Context: "x := []int{1, 2, 3}\n", Choices: []string{"for _, v := range x {", "}", "Hello, world"}, Gold: 0},
}

type ortAnswer struct {
	Loglik []float64 `json:"loglik"`
}

type pair struct {
	Context      []int64 `json:"context"`
	Continuation []int64 `json:"continuation"`
}

// byteIDs is s in the byte-level ids of the shared test models.
func byteIDs(s string) []int64 {
	ids, _ := tokenizer.Bytes().Encode(s) // never fails
	return ids
}

// TestScoringAgainstORT: the log-likelihoods onnxruntime computes (judge
// script tools/judges/ort_lm.js, one example at a time, no padding) for the
// harness's context/continuation split give exactly the acc and acc_norm
// that Evaluate reports with the Go runtime, batched and padded.
func TestScoringAgainstORT(t *testing.T) {
	ort := judge.ORT(t)
	for _, name := range []string{"llama8", "gpt2_6", "tiny_llama_kv"} {
		t.Run(name, func(t *testing.T) {
			path := modelPath(t, name)
			s := testsession.Open(t, path)
			task := &harness.Task{Name: "hand", Source: "hand", Format: "context", Delimiter: " ", Examples: handMade}
			res, err := harness.Evaluate(context.Background(), task, tokenizer.Bytes(), &harness.Model{Session: s}, harness.Options{Batch: 5})
			if err != nil {
				t.Fatal(err)
			}
			// The harness's split, written out by hand: the context's trailing
			// whitespace starts the continuation.
			var req struct {
				Model  string           `json:"model"`
				Past   map[string][]int `json:"past"`
				Loglik []pair           `json:"loglik"`
			}
			req.Model, req.Past = path, pastShapes(t, s)
			for _, ex := range handMade {
				ctx := strings.TrimRight(ex.Context, " \t\n")
				moved := ex.Context[len(ctx):]
				for _, c := range ex.Choices {
					req.Loglik = append(req.Loglik, pair{byteIDs(ctx), byteIDs(moved + " " + c)})
				}
			}
			var ans ortAnswer
			if err := ort.Script("ort_lm.js", req, &ans); err != nil {
				t.Fatal(err)
			}
			if len(ans.Loglik) != len(req.Loglik) {
				t.Fatalf("onnxruntime gave %d log-likelihoods for %d pairs", len(ans.Loglik), len(req.Loglik))
			}
			var acc, accNorm float64
			k := 0
			for i, ex := range handMade {
				lls := ans.Loglik[k : k+len(ex.Choices)]
				norm := make([]float64, len(lls))
				for j, c := range ex.Choices {
					norm[j] = lls[j] / float64(len([]rune(c)))
					if d := math.Abs(res.LogLikelihoods[i][j] - lls[j]); d > 1e-3*math.Max(1, math.Abs(lls[j])) {
						t.Errorf("example %d choice %d: Go %.6f, onnxruntime %.6f", i, j, res.LogLikelihoods[i][j], lls[j])
					}
				}
				if harness.Argmax(lls) == ex.Gold {
					acc++
				}
				if harness.Argmax(norm) == ex.Gold {
					accNorm++
				}
				k += len(ex.Choices)
			}
			acc /= float64(len(handMade))
			accNorm /= float64(len(handMade))
			if res.Acc != acc || res.AccNorm != accNorm {
				t.Errorf("Go acc %v acc_norm %v; from onnxruntime's log-likelihoods %v, %v", res.Acc, res.AccNorm, acc, accNorm)
			}
			t.Logf("acc %.4f acc_norm %.4f (onnxruntime: %.4f, %.4f)", res.Acc, res.AccNorm, acc, accNorm)
		})
	}
}

// modelPath finds a shared test model or a fixture of testdata/models.
func modelPath(t *testing.T, name string) string {
	if strings.HasPrefix(name, "tiny_") {
		return filepath.Join(testenv.RepoRoot(t), "testdata", "models", name+".onnx")
	}
	return testenv.TestModel(t, name)
}

// pastShapes gives each past input of a KV-cache model an empty shape
// [1, heads, 0, size].
func pastShapes(t *testing.T, s *runtime.Session) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	for _, in := range s.Inputs() {
		if !strings.HasPrefix(in.Name, "past") {
			continue
		}
		if len(in.Shape) != 4 || in.Shape[1].Size <= 0 || in.Shape[3].Size <= 0 {
			t.Fatalf("%s: shape %v, want static heads and size", in.Name, in.Shape)
		}
		out[in.Name] = []int{1, in.Shape[1].Size, 0, in.Shape[3].Size}
	}
	return out
}

// TestSharedContextCache: on a KV-cache model, running each example's
// context once and its choices after the cached context gives the
// log-likelihoods of running every choice whole.
func TestSharedContextCache(t *testing.T) {
	s := testsession.Open(t, modelPath(t, "tiny_llama_kv"))
	task := &harness.Task{Name: "hand", Source: "hand", Format: "context", Delimiter: " ", Examples: handMade}
	cached := &harness.Model{Session: s}
	whole := &harness.Model{Session: s, NoCache: true}
	a, err := harness.Evaluate(context.Background(), task, tokenizer.Bytes(), cached, harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := harness.Evaluate(context.Background(), task, tokenizer.Bytes(), whole, harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.LogLikelihoods {
		for j := range a.LogLikelihoods[i] {
			x, y := a.LogLikelihoods[i][j], b.LogLikelihoods[i][j]
			if math.Abs(x-y) > 1e-4*math.Max(1, math.Abs(y)) {
				t.Errorf("example %d choice %d: %.6f with the cache, %.6f whole", i, j, x, y)
			}
		}
	}
	if cached.InputTokens >= whole.InputTokens {
		t.Errorf("the cache ran %d tokens, running whole %d: the context was not shared", cached.InputTokens, whole.InputTokens)
	}
	t.Logf("tokens run: %d with the shared context, %d whole", cached.InputTokens, whole.InputTokens)
}
