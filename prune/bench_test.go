package prune

import (
	"context"
	"math"
	"reflect"
	"testing"

	"github.com/onnxslm/onnxslm/rewrite"
)

// TestCachedStreamSameDecisions: starting candidates from the cached residual
// stream gives the decisions and scores of rerunning the whole model.
func TestCachedStreamSameDecisions(t *testing.T) {
	fx := load(t, "llama8")
	var reps [2]*Report
	for i, full := range []bool{false, true} {
		out, err := Run(context.Background(), fx.model, Options{Method: SLM, Merge: rewrite.Paper, Threshold: 0.85, Calibration: fx.calib, Batch: 16, FullRerun: full})
		if err != nil {
			t.Fatal(err)
		}
		reps[i] = out.Report
	}
	if !reflect.DeepEqual(reps[0].Windows, reps[1].Windows) {
		t.Fatalf("windows: cached %v, full rerun %v", reps[0].Windows, reps[1].Windows)
	}
	if len(reps[0].Trace) != len(reps[1].Trace) {
		t.Fatalf("trace: cached %d steps, full rerun %d", len(reps[0].Trace), len(reps[1].Trace))
	}
	for i := range reps[0].Trace {
		a, b := reps[0].Trace[i], reps[1].Trace[i]
		if a.Action != b.Action || math.Abs(a.Sim-b.Sim) > 1e-5 {
			t.Errorf("step %d: cached %+v, full rerun %+v", i, a, b)
		}
	}
}

// BenchmarkSearch compares the SLM search on llama8 (threshold 0.85, the paper
// rule) when candidates start from the cached stream entering their lowest
// changed layer with a search that reruns the whole model per candidate.
//
//	go test ./prune -run '^$' -bench Search -benchtime 3x
//
// The candidate-seconds metric is the time spent scoring candidates.
func BenchmarkSearch(b *testing.B) {
	for _, mode := range []struct {
		name string
		full bool
	}{{"cached", false}, {"full_rerun", true}} {
		b.Run(mode.name, func(b *testing.B) {
			fx := load(&testing.T{}, "llama8")
			var cand float64
			for i := 0; i < b.N; i++ {
				out, err := Run(context.Background(), fx.model, Options{Method: SLM, Merge: rewrite.Paper, Threshold: 0.85, Calibration: fx.calib, Batch: 16, FullRerun: mode.full})
				if err != nil {
					b.Fatal(err)
				}
				cand += out.Report.CandidateSeconds
			}
			b.ReportMetric(cand/float64(b.N), "candidate-s/op")
		})
	}
}
