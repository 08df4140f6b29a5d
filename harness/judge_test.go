package harness_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/harness"
	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
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

func byteIDs(s string) []int64 {
	ids := make([]int64, len(s))
	for i := range ids {
		ids[i] = int64(s[i])
	}
	return ids
}

// TestScoringAgainstORT: the log-likelihoods onnxruntime computes (judge
// script tools/judges/ort_lm.js, one example at a time, no padding) for the
// harness's context/continuation split give exactly the acc and acc_norm
// that Evaluate reports with the Go runtime, batched and padded.
func TestScoringAgainstORT(t *testing.T) {
	ort := judge.ORT(t)
	for _, name := range []string{"llama8", "gpt2_6"} {
		t.Run(name, func(t *testing.T) {
			path := testenv.TestModel(t, name)
			m, err := onnx.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := runtime.New(m.Proto, runtime.Options{})
			if err != nil {
				t.Fatal(err)
			}
			task := &harness.Task{Name: "hand", Source: "hand", Format: "context", Delimiter: " ", Examples: handMade}
			res, err := harness.Evaluate(context.Background(), task, tokenizer.Bytes(), &harness.Model{Session: s}, harness.Options{Batch: 5})
			if err != nil {
				t.Fatal(err)
			}
			// The harness's split, written out by hand: the context's trailing
			// whitespace starts the continuation.
			var req struct {
				Model  string `json:"model"`
				Loglik []pair `json:"loglik"`
			}
			req.Model = path
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
