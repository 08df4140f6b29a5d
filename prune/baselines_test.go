package prune

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/onnxslm/onnxslm/internal/reference"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokens"
)

// perplexities evaluates a model on both held-out sets with the Go runtime
// (itself checked against PyTorch to 0.05 % in package lm).
func perplexities(t *testing.T, dir string, m *pb.ModelProto) (goPPL, prosePPL float64) {
	t.Helper()
	sess, err := runtime.New(m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out [2]float64
	for i, set := range []string{"eval_go_64x256.npy", "eval_prose_64x256.npy"} {
		ts, err := tokens.Read(filepath.Join(dir, "tokens", set))
		if err != nil {
			t.Fatal(err)
		}
		res, err := lm.Perplexity(context.Background(), sess, ts.Rows, lm.Options{Batch: 16})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = res.Perplexity
	}
	return out[0], out[1]
}

// TestMethodsReproduceReference prunes with every reference method at the
// recorded thresholds; the layers chosen and the result's similarity must be
// the recorded ones. For the paper's loop and the authors' code the windows
// must be the recorded ones and every traced similarity must agree within
// 1e-4 (package rewrite's recorded-perplexity test then shows those windows'
// models have the recorded perplexity). For shortgpt and drop the pruned
// model's perplexity on both held-out sets must equal the recorded one within
// 0.2 % (each distinct model evaluated once).
func TestMethodsReproduceReference(t *testing.T) {
	testenv.Long(t, "runs 40 searches on the shared models")
	cases := []struct {
		method Method
		merge  rewrite.Rule
		ref    string
	}{
		{SLM, rewrite.Paper, "slm"},
		{SLM, rewrite.Code, "slm_authors_code"},
		{ShortGPT, "", "shortgpt"},
		{Drop, "", "drop"},
	}
	for _, name := range reference.Models {
		fx := load(t, name)
		ths, keys := fx.ref.Thresholds()
		evaluated := map[string][2]float64{}
		for i, th := range ths {
			for _, c := range cases {
				t.Run(fmt.Sprintf("%s/%s/%s", name, c.ref, keys[i]), func(t *testing.T) {
					run := fx.ref.Runs[keys[i]][c.ref]
					out, err := Run(context.Background(), fx.model, Options{
						Method: c.method, Merge: c.merge, Threshold: th, Calibration: fx.calib, Batch: 16, Version: "test",
					})
					if err != nil {
						t.Fatal(err)
					}
					rep := out.Report
					if rep.LayersAfter != run.Layers {
						t.Errorf("layers: got %d, want %d", rep.LayersAfter, run.Layers)
					}
					if c.method == SLM {
						checkTrace(t, rep, run)
					}
					if run.RemovedLayers != nil && !reflect.DeepEqual(rep.RemovedLayers, run.RemovedLayers) {
						t.Errorf("removed layers: got %v, want %v", rep.RemovedLayers, run.RemovedLayers)
					}
					if math.Abs(rep.Similarity-run.CalibSim) > 1e-4 {
						t.Errorf("similarity: got %.6f, want %.6f", rep.Similarity, run.CalibSim)
					}
					if c.method == SLM {
						// The model of every recorded window is the recorded
						// perplexity's in onnxruntime
						// (rewrite.TestMergeReproducesRecordedPerplexity), and
						// checkTrace proved the windows are those.
						return
					}
					key := fmt.Sprint(c.method == Drop, rep.RemovedLayers)
					ppl, ok := evaluated[key]
					if !ok {
						g, p := perplexities(t, fx.dir, out.Model)
						ppl = [2]float64{g, p}
						evaluated[key] = ppl
					}
					for j, want := range []float64{run.PPL.EvalGo.PPL, run.PPL.EvalProse.PPL} {
						if rel := math.Abs(ppl[j]-want) / want; rel > 0.002 {
							t.Errorf("%s perplexity: got %.4f, want %.4f (%.3f%% off)", []string{"eval_go", "eval_prose"}[j], ppl[j], want, 100*rel)
						}
					}
				})
			}
		}
	}
}

// checkTrace compares a run of the paper's loop with the recorded one: the
// windows, and every step of the trace (window, action, similarity within
// 1e-4).
func checkTrace(t *testing.T, rep *Report, run reference.Run) {
	t.Helper()
	want := run.Windows
	if want == nil {
		want = [][2]int{}
	}
	if !reflect.DeepEqual(rep.Windows, want) {
		t.Errorf("windows: got %v, want %v", rep.Windows, want)
	}
	if len(rep.Trace) != len(run.Trace) {
		t.Fatalf("trace: got %d steps, want %d:\n got %v\nwant %v", len(rep.Trace), len(run.Trace), rep.Trace, run.Trace)
	}
	for j, s := range rep.Trace {
		r := run.Trace[j]
		if s.Low != r.Low || s.High != r.High || s.Action != r.Action || math.Abs(s.Sim-r.Sim) > 1e-4 {
			t.Errorf("step %d: got (%d,%d) %.6f %s, want (%d,%d) %.6f %s", j, s.Low, s.High, s.Sim, s.Action, r.Low, r.High, r.Sim, r.Action)
		}
	}
}
