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
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/tokens"
)

type fixture struct {
	model *pb.ModelProto
	calib [][]int64
	ref   *reference.SLM
	dir   string
}

func load(t *testing.T, name string) fixture {
	t.Helper()
	dir := filepath.Join(testenv.SharedDir(t), "testmodels")
	m, err := onnx.Load(filepath.Join(dir, name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cal, err := tokens.Read(filepath.Join(dir, "tokens", "calib_train_16x128.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reference.LoadSLM(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{m.Proto, cal.Rows, ref, dir}
}

// TestFaithfulModesReproduceReference runs the paper's loop and the authors'
// code at the recorded thresholds: the windows must equal the recorded ones and
// every traced similarity must agree within 1e-4.
func TestFaithfulModesReproduceReference(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 20 searches on the shared models")
	}
	modes := []struct {
		merge  rewrite.Rule
		method string
	}{
		{rewrite.Paper, "slm"},
		{rewrite.Code, "slm_authors_code"},
	}
	for _, name := range reference.Models {
		fx := load(t, name)
		ths, keys := fx.ref.Thresholds()
		for i, th := range ths {
			for _, mode := range modes {
				t.Run(fmt.Sprintf("%s/%s/%s", name, mode.method, keys[i]), func(t *testing.T) {
					run := fx.ref.Runs[keys[i]][mode.method]
					out, err := Run(context.Background(), fx.model, Options{
						Method: SLM, Merge: mode.merge, Threshold: th, Calibration: fx.calib, Batch: 16, Version: "test",
					})
					if err != nil {
						t.Fatal(err)
					}
					rep := out.Report
					want := run.Windows
					if want == nil {
						want = [][2]int{}
					}
					if !reflect.DeepEqual(rep.Windows, want) {
						t.Errorf("windows: got %v, want %v", rep.Windows, want)
					}
					if rep.LayersAfter != run.Layers {
						t.Errorf("layers: got %d, want %d", rep.LayersAfter, run.Layers)
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
					if math.Abs(rep.Similarity-run.CalibSim) > 1e-4 {
						t.Errorf("similarity of the result: got %.6f, want %.6f", rep.Similarity, run.CalibSim)
					}
				})
			}
		}
	}
}
