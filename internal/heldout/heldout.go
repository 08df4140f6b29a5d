// Package heldout is the grid and the data that the results programs
// (internal/results, internal/cmd/widthresults) report on: the shared
// reference models, the pruning ratios, the calibration set and the two
// held-out evaluation sets under ../shared/testmodels. Both programs read them
// here so that their tables stay comparable.
package heldout

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokens"
)

var (
	// Models are the shared reference models (testmodels/NAME.onnx).
	Models = []string{"llama8", "gpt2_6"}
	// Ratios are the pruning ratios of the tables.
	Ratios = []float64{0.25, 0.35}
	// Evals name the held-out sets (testmodels/tokens/NAME.npy), in the order of Data.Evals.
	Evals = []string{"eval_go_64x256", "eval_prose_64x256"}
)

// SharedUsage is the help of the programs' -shared flag, the folder Load reads.
const SharedUsage = "folder holding testmodels/ (default: ../shared next to the repository)"

// Data is what Load reads.
type Data struct {
	// Dir is the testmodels folder.
	Dir string
	// Calib is the calibration set, tokens/calib_train_16x128.npy.
	Calib [][]int64
	// Evals are the rows of the held-out sets named by Evals.
	Evals [2][][]int64
}

// Load reads the calibration and held-out sets from shared/testmodels; an
// empty shared means ../shared next to the repository.
func Load(shared string) (*Data, error) {
	if shared == "" {
		root, err := testenv.Root()
		if err != nil {
			return nil, fmt.Errorf("%w: pass -shared", err)
		}
		shared = filepath.Join(root, "..", "shared")
	}
	d := &Data{Dir: filepath.Join(shared, "testmodels")}
	cal, err := tokens.Read(filepath.Join(d.Dir, "tokens", "calib_train_16x128.npy"))
	if err != nil {
		return nil, err
	}
	d.Calib = cal.Rows
	for i, name := range Evals {
		ts, err := tokens.Read(filepath.Join(d.Dir, "tokens", name+".npy"))
		if err != nil {
			return nil, err
		}
		d.Evals[i] = ts.Rows
	}
	return d, nil
}

// Perplexities returns sess's perplexity on each held-out set.
func Perplexities(ctx context.Context, sess *runtime.Session, sets [2][][]int64) ([2]float64, error) {
	var out [2]float64
	for i, rows := range sets {
		res, err := lm.Perplexity(ctx, sess, rows, lm.Options{Batch: 16})
		if err != nil {
			return out, fmt.Errorf("%s: %w", Evals[i], err)
		}
		out[i] = res.Perplexity
	}
	return out, nil
}
