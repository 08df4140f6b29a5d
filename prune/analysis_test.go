package prune

import (
	"context"
	"math"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/reference"
	"github.com/onnxslm/onnxslm/npy"
)

// TestAnalyzeMatchesReference analyses both shared models on the shared
// calibration set: the linear CKA matrix must equal NAME.cka.npy within 1e-4,
// Block Influence NAME.slm.json's within 1e-5, and the windows at every
// recorded threshold (0.95, 0.9, 0.85, 0.8, 0.72) the recorded paper-rule
// windows, with the similarity of the result within 1e-4.
func TestAnalyzeMatchesReference(t *testing.T) {
	for _, name := range reference.Models {
		t.Run(name, func(t *testing.T) {
			fx := load(t, name)
			ths, keys := fx.ref.Thresholds()
			arr, err := npy.Read(filepath.Join(fx.dir, name+".cka.npy"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := arr.Float64s()
			if err != nil {
				t.Fatal(err)
			}
			a, err := Analyze(context.Background(), fx.model, AnalyzeOptions{
				Calibration: fx.calib, Batch: 16, Kernel: KernelLinear, Thresholds: ths,
			})
			if err != nil {
				t.Fatal(err)
			}
			L := fx.ref.Layers
			if a.Layers != L || len(arr.Shape) != 2 || arr.Shape[0] != L || arr.Shape[1] != L {
				t.Fatalf("layers: got %d, want %d (cka.npy shape %v)", a.Layers, L, arr.Shape)
			}
			if len(a.CKA) != L {
				t.Fatalf("CKA: got %d rows, want %d", len(a.CKA), L)
			}
			for i := range L {
				for j := range L {
					if got, w := a.CKA[i][j], want[i*L+j]; math.Abs(got-w) > 1e-4 {
						t.Errorf("CKA[%d][%d]: got %.6f, want %.6f", i, j, got, w)
					}
				}
			}
			if len(a.AdjacentCKA) != L-1 {
				t.Errorf("adjacent CKA: got %d values, want %d", len(a.AdjacentCKA), L-1)
			}
			for i, c := range a.AdjacentCKA {
				if w := want[i*L+i+1]; math.Abs(c-w) > 1e-4 {
					t.Errorf("adjacent CKA %d–%d: got %.6f, want %.6f", i, i+1, c, w)
				}
			}
			if len(a.BlockInfluence) != len(fx.ref.BlockInfluence) {
				t.Fatalf("block influence: got %d values, want %d", len(a.BlockInfluence), len(fx.ref.BlockInfluence))
			}
			for i, bi := range a.BlockInfluence {
				if w := fx.ref.BlockInfluence[i]; math.Abs(bi-w) > 1e-5 {
					t.Errorf("block influence %d: got %.6f, want %.6f", i, bi, w)
				}
			}
			if len(a.Windows) != len(ths) {
				t.Fatalf("windows: got %d thresholds, want %d", len(a.Windows), len(ths))
			}
			for i, tw := range a.Windows {
				key := keys[i]
				run, ok := fx.ref.Runs[key]["slm"]
				if !ok {
					t.Fatalf("%s.slm.json has no slm run at %s", name, key)
				}
				wantW := run.Windows
				if wantW == nil {
					wantW = [][2]int{}
				}
				if tw.Threshold != ths[i] || !reflect.DeepEqual(tw.Windows, wantW) || tw.Layers != run.Layers {
					t.Errorf("threshold %s: got %v (%d layers), want %v (%d layers)", key, tw.Windows, tw.Layers, wantW, run.Layers)
				}
				if math.Abs(tw.Similarity-run.CalibSim) > 1e-4 {
					t.Errorf("threshold %s: similarity of the result: got %.6f, want %.6f", key, tw.Similarity, run.CalibSim)
				}
			}
			// The thresholds share candidates: never more than one loop's worth each.
			if a.Candidates <= 0 || a.Candidates > len(ths)*2*L {
				t.Errorf("candidates evaluated: got %d, want 1..%d", a.Candidates, len(ths)*2*L)
			}
		})
	}
}

// TestAnalyzeKernelsAndErrors checks the RBF kernel on a small generated
// model (a symmetric matrix with a unit diagonal) and the refused options.
func TestAnalyzeKernelsAndErrors(t *testing.T) {
	m, err := modelgen.Build(modelgen.Config{Arch: modelgen.Llama, Layers: 3, Hidden: 16, Heads: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	rows := make([][]int64, 3)
	for i := range rows {
		rows[i] = make([]int64, 12)
		for j := range rows[i] {
			rows[i][j] = int64((i*31 + j*7) % 256)
		}
	}
	a, err := Analyze(context.Background(), m, AnalyzeOptions{Calibration: rows, Batch: 2, Kernel: KernelRBF, Thresholds: []float64{0.99}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Kernel, "rbf(sigma=1*median distance)"; got != want {
		t.Errorf("kernel: got %q, want %q", got, want)
	}
	if len(a.CKA) != 3 || len(a.BlockInfluence) != 3 || len(a.AdjacentCKA) != 2 || len(a.Windows) != 1 {
		t.Fatalf("shapes: got CKA %d, BI %d, adjacent %d, windows %d; want 3, 3, 2, 1", len(a.CKA), len(a.BlockInfluence), len(a.AdjacentCKA), len(a.Windows))
	}
	for i := range 3 {
		if math.Abs(a.CKA[i][i]-1) > 1e-9 {
			t.Errorf("CKA[%d][%d]: got %v, want 1", i, i, a.CKA[i][i])
		}
		for j := range 3 {
			if math.Abs(a.CKA[i][j]-a.CKA[j][i]) > 1e-12 {
				t.Errorf("CKA not symmetric at %d,%d: %v vs %v", i, j, a.CKA[i][j], a.CKA[j][i])
			}
		}
	}
	if got, want := a.Calibration, (CalibrationInfo{Sequences: 3, SeqLen: 12, Tokens: 36}); got != want {
		t.Errorf("calibration: got %+v, want %+v", got, want)
	}

	bad := []struct {
		name string
		opts AnalyzeOptions
	}{
		{"no calibration", AnalyzeOptions{}},
		{"unknown kernel", AnalyzeOptions{Calibration: rows, Kernel: "cosine"}},
		{"threshold 0", AnalyzeOptions{Calibration: rows, Thresholds: []float64{0}}},
		{"threshold above 1", AnalyzeOptions{Calibration: rows, Thresholds: []float64{1.5}}},
		{"ragged rows", AnalyzeOptions{Calibration: [][]int64{rows[0], rows[1][:8]}}},
		{"rows too short", AnalyzeOptions{Calibration: [][]int64{{1, 2, 3}}}},
		{"negative RBF factor", AnalyzeOptions{Calibration: rows, Kernel: KernelRBF, RBFFactor: -1}},
	}
	for _, c := range bad {
		if _, err := Analyze(context.Background(), m, c.opts); err == nil {
			t.Errorf("%s: got no error, want one", c.name)
		}
	}
}
