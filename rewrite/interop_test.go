package rewrite_test

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/reference"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/slm"
)

// recordedCase is one pruned model recorded in NAME.slm.json.
type recordedCase struct {
	method    string // slm, slm_authors_code, shortgpt, drop
	threshold string
	plan      rewrite.Plan
	ppl       [2]float64 // eval_go, eval_prose
}

func (c recordedCase) String() string {
	if len(c.plan.Windows) > 0 {
		var ws [][2]int
		for _, w := range c.plan.Windows {
			ws = append(ws, [2]int{w.Low, w.High})
		}
		return fmt.Sprintf("%s/%s/windows%v", c.method, c.plan.Rule, ws)
	}
	return fmt.Sprintf("%s/removed%v", c.method, c.plan.Remove)
}

// recordedCases returns the distinct pruned models of NAME.slm.json, in threshold
// order: the windows of `slm` merged with rule paper, those of `slm_authors_code`
// with rule code, and the layers `shortgpt` and `drop` removed.
func recordedCases(t *testing.T, name string) []recordedCase {
	t.Helper()
	ref := testenv.SLM(t, name)
	_, keys := ref.Thresholds()
	seen := map[string]bool{}
	var cases []recordedCase
	for _, key := range keys {
		for _, method := range []string{"slm", "slm_authors_code", "shortgpt", "drop"} {
			run, ok := ref.Runs[key][method]
			if !ok {
				t.Fatalf("%s.slm.json: no %s run at threshold %s", name, method, key)
			}
			c := recordedCase{method: method, threshold: key, ppl: [2]float64{run.PPL.EvalGo.PPL, run.PPL.EvalProse.PPL}}
			switch method {
			case "slm", "slm_authors_code":
				c.plan.Rule = rewrite.Paper
				if method == "slm_authors_code" {
					c.plan.Rule = rewrite.Code
				}
				for _, w := range run.Windows {
					c.plan.Windows = append(c.plan.Windows, rewrite.Window{Window: slm.Window{Low: w[0], High: w[1]}})
				}
			default:
				c.plan.Rule = rewrite.Drop
				c.plan.Remove = slices.Clone(run.RemovedLayers)
			}
			if seen[c.String()] {
				continue
			}
			seen[c.String()] = true
			cases = append(cases, c)
		}
	}
	return cases
}

// evalTokens returns eval_go and eval_prose stacked into one [128, 256] batch.
func evalTokens(t *testing.T) (*npy.Array, [2]int) {
	t.Helper()
	var ids []int64
	var rows [2]int
	var cols int
	for i, set := range []string{"tokens/eval_go_64x256.npy", "tokens/eval_prose_64x256.npy"} {
		a, err := npy.Read(testenv.TestFile(t, set))
		if err != nil {
			t.Fatal(err)
		}
		x, err := a.Int64s()
		if err != nil {
			t.Fatal(err)
		}
		rows[i], cols = a.Shape[0], a.Shape[1]
		ids = append(ids, x...)
	}
	arr, err := npy.New([]int{rows[0] + rows[1], cols}, ids)
	if err != nil {
		t.Fatal(err)
	}
	return arr, rows
}

// perplexities returns exp(mean next-token NLL) of each of the two stacked sets.
func perplexities(t *testing.T, ids *npy.Array, rows [2]int, logits *npy.Array) [2]float64 {
	t.Helper()
	tok, _ := ids.Int64s()
	lg, err := logits.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	n, T := ids.Shape[0], ids.Shape[1]
	if len(logits.Shape) != 3 || logits.Shape[0] != n || logits.Shape[1] != T {
		t.Fatalf("logits shape %v, want [%d %d V]", logits.Shape, n, T)
	}
	V := logits.Shape[2]
	var out [2]float64
	for set := 0; set < 2; set++ {
		r0 := 0
		if set == 1 {
			r0 = rows[0]
		}
		var sum float64
		cnt := 0
		for r := r0; r < r0+rows[set]; r++ {
			for p := 0; p+1 < T; p++ {
				row := lg[(r*T+p)*V : (r*T+p+1)*V]
				sum += lm.LogSumExp(row) - float64(row[tok[r*T+p+1]])
				cnt++
			}
		}
		out[set] = math.Exp(sum / float64(cnt))
	}
	return out
}

// TestMergeReproducesRecordedPerplexity merges the windows recorded in
// NAME.slm.json (rule paper for method slm, rule code for slm_authors_code) and
// removes the recorded layers (shortgpt, drop); each result passes the ONNX
// checker and, run in onnxruntime, has the recorded perplexity on both eval sets
// within 0.1 %. Every recorded slm and slm_authors_code model is checked, and the
// first shortgpt and drop ones; in -short mode only the first slm and
// slm_authors_code ones.
func TestMergeReproducesRecordedPerplexity(t *testing.T) {
	ort := judge.ORT(t)
	checker := judge.Checker(t)
	ids, rows := evalTokens(t)
	for _, name := range reference.Models {
		t.Run(name, func(t *testing.T) {
			m, s := testmodel.Shared(t, name)
			done := map[string]bool{}
			for _, c := range recordedCases(t, name) {
				faithful := c.method == "slm" || c.method == "slm_authors_code"
				if done[c.method] && (testing.Short() || !faithful) {
					continue
				}
				if testing.Short() && !faithful {
					continue
				}
				done[c.method] = true
				t.Run(c.String(), func(t *testing.T) {
					res, err := rewrite.Merge(m.Proto, s, c.plan, rewrite.Options{Check: true,
						Meta: rewrite.Meta{Version: "test", Method: c.method}})
					if err != nil {
						t.Fatal(err)
					}
					wantLayers := len(s.Layers)
					for _, w := range c.plan.Windows {
						wantLayers -= w.High - w.Low
					}
					wantLayers -= len(c.plan.Remove)
					if res.LayersAfter != wantLayers {
						t.Errorf("layers after = %d, want %d", res.LayersAfter, wantLayers)
					}
					path := filepath.Join(t.TempDir(), name+".onnx")
					if err := onnx.Save(res.Model, path, onnx.SaveOptions{}); err != nil {
						t.Fatal(err)
					}
					if err := checker.Check(path); err != nil {
						t.Errorf("ONNX checker: %v", err)
					}
					out, err := ort.Run(path, map[string]*npy.Array{s.Tokens: ids}, []string{s.Logits})
					if err != nil {
						t.Fatal(err)
					}
					got := perplexities(t, ids, rows, out[s.Logits])
					for i, set := range []string{"eval_go", "eval_prose"} {
						if rel := math.Abs(got[i]-c.ppl[i]) / c.ppl[i]; rel > 1e-3 {
							t.Errorf("%s perplexity = %.6f, want %.6f (recorded, threshold %s; off by %.3f %%)", set, got[i], c.ppl[i], c.threshold, 100*rel)
						}
					}
				})
			}
		})
	}
}

// TestMergeKeepsUntouchedTensorsShared checks that a merge never copies or changes
// the input's tensors: every initializer of the result either is one of the
// input's (the same proto) or is new.
func TestMergeKeepsUntouchedTensorsShared(t *testing.T) {
	for _, name := range reference.Models {
		t.Run(name, func(t *testing.T) {
			m, s := testmodel.Shared(t, name)
			before := snapshot(m.Proto)
			for _, rule := range rewrite.Rules {
				res, err := rewrite.Merge(m.Proto, s, rewrite.Plan{Rule: rule, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 3}}}}, rewrite.Options{Check: true})
				if err != nil {
					t.Fatalf("rule %s: %v", rule, err)
				}
				orig := map[*pb.TensorProto]bool{}
				for _, t := range m.Proto.Graph.Initializer {
					orig[t] = true
				}
				var fresh []string
				for _, x := range res.Model.Graph.Initializer {
					if !orig[x] {
						fresh = append(fresh, x.GetName())
					}
				}
				sort.Strings(fresh)
				want := slices.Clone(res.NewInitializers)
				sort.Strings(want)
				if !slices.Equal(fresh, want) {
					t.Errorf("rule %s: new initializers %v, want %v", rule, fresh, want)
				}
			}
			if after := snapshot(m.Proto); after != before {
				t.Errorf("Merge modified its input model")
			}
		})
	}
}
