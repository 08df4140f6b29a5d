package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/testenv"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestRunErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  config
		want string
	}{
		{config{}, "-model is required"},
		{config{model: "x.onnx", reps: 1, threads: 2, engines: "go,tf"}, `unknown engine "tf"`},
		{config{model: "x.onnx", reps: 0, threads: 2, engines: "go"}, "-reps"},
	} {
		err := run(c.cfg, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%+v) error = %v, want one containing %q", c.cfg, err, c.want)
		}
	}
}

// TestLlama8 runs the benchmark briefly on llama8: the Go runtime alone, and
// against onnxruntime where the judge is installed (then the logits of the
// two must agree).
func TestLlama8(t *testing.T) {
	model := testenv.TestModel(t, "llama8")
	toks := testenv.TestFile(t, "tokens/calib_train_16x128.npy")
	engines := []string{"go"}
	if !testing.Short() {
		judge.ORT(t)
		engines = append(engines, "go,ort")
	}
	for _, e := range engines {
		t.Run(e, func(t *testing.T) {
			var out bytes.Buffer
			cfg := config{model: model, tokensFile: toks, rows: 4, threads: 2, warmup: 1, reps: 2, engines: e, ortSpin: true, jsonOut: true}
			if err := run(cfg, &out); err != nil {
				t.Fatal(err)
			}
			var r Result
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("-json output: %v\n%s", err, out.String())
			}
			if r.Batch != 4 || r.SeqLen != 128 || r.Go == nil || len(r.Go.Seconds) != 2 || !(r.Go.TokensPerSec > 0) {
				t.Fatalf("got batch %d×%d, Go %+v; want 4×128 and two timed runs", r.Batch, r.SeqLen, r.Go)
			}
			if r.PeakRSS <= 0 || r.WeightBytes <= 0 {
				t.Errorf("peak RSS %d, weights %d bytes; want both > 0", r.PeakRSS, r.WeightBytes)
			}
			if e == "go,ort" {
				if r.ORT == nil || !(r.Ratio > 0) || r.LogitsRelDiff == nil || *r.LogitsRelDiff > 1e-4 {
					t.Errorf("got ORT %+v, ratio %v, logits diff %v; want timings, a ratio and agreeing logits", r.ORT, r.Ratio, r.LogitsRelDiff)
				}
			}
		})
	}
}
