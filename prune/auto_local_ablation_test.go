package prune

import (
	"context"
	"fmt"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
)

// TestAutoLocalScores measures how well a window's local error (its merged,
// repaired layer's output against h_{high+1}, one layer's run) ranks the
// options the way their KL alone does (every layer above and the LM head),
// against the screen's span influence: Spearman rank correlation over all
// options of the full search, and per window size. A measurement for
// docs/design/method.md:
//
//	ONNXSLM_ABLATION=1 go test ./prune -run TestAutoLocalScores -v -timeout 30m
func TestAutoLocalScores(t *testing.T) {
	testenv.Ablation(t)
	type cell struct {
		name   string
		st     *discover.Stack
		a      *autoEval
		target int
	}
	var cells []cell
	for _, c := range []struct {
		model  string
		target int
	}{{"llama8", 5}, {"gpt2_6", 3}} {
		fx := load(t, c.model)
		st := testmodel.Find(t, fx.model)
		cells = append(cells, cell{c.model, st, calibratedAuto(t, fx.model, st, fx.calib, 8), c.target})
	}
	deep, st := testmodel.Generated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 12, Hidden: 16, Heads: 2, FFN: 24, Seed: 11})
	cells = append(cells, cell{"gen12", st, calibratedAuto(t, deep, st, randomRows(8, 16, 7), 4), 8})
	for _, c := range cells {
		L := c.st.NumLayers()
		cfg := defaultAuto
		cfg.Joint, cfg.RidgeGrid, cfg.MaxSpans = 1, nil, 0
		res, err := autoSearch(context.Background(), c.a, L, c.target, cfg)
		if err != nil {
			t.Fatal(err)
		}
		type row struct {
			size          int
			kl, nmse, cos float64
			bi, klCheck   float64
			rawCos        float64
		}
		var rows []row
		for _, o := range res.options {
			_, lm, err := c.a.fitLocal(context.Background(), o.win, cfg.Ridge, true)
			if err != nil {
				t.Fatal(err)
			}
			_, raw, err := c.a.fitLocal(context.Background(), o.win, cfg.Ridge, false)
			if err != nil {
				t.Fatal(err)
			}
			bi, _ := c.a.sc.cal.removedInfluence(o.win.Low, o.win.High)
			rows = append(rows, row{o.win.Size(), cost(o.m), lm.NMSE, lm.Cos, bi, o.m.Check.KL, raw.Cos})
		}
		scores := map[string]func(r row) float64{
			"local NMSE":              func(r row) float64 { return r.nmse },
			"local 1-cos":             func(r row) float64 { return r.cos },
			"local 1-cos, no repair":  func(r row) float64 { return r.rawCos },
			"span influence (screen)": func(r row) float64 { return r.bi },
		}
		for name, f := range scores {
			var x, y []float64
			for _, r := range rows {
				x, y = append(x, f(r)), append(y, r.kl)
			}
			line := fmt.Sprintf("all %d options: %.2f;", len(x), spearman(x, y))
			for size := 2; size <= L-c.target+1; size++ {
				x, y = x[:0], y[:0]
				for _, r := range rows {
					if r.size == size {
						x, y = append(x, f(r)), append(y, r.kl)
					}
				}
				if len(x) >= 3 {
					line += fmt.Sprintf(" size %d: %.2f (%d);", size, spearman(x, y), len(x))
				}
			}
			t.Logf("%s →%d, %s: %s", c.name, c.target, name, line)
		}
	}
}

// TestAutoLocalBudget chooses the local-first search's pool and KL budget on
// llama8 forced to screen (MaxSpans 8 of its 13 or 18 windows): the pool of
// locally measured windows and the passes spent on KL measures, against the
// full search's set (docs/design/method.md):
//
//	ONNXSLM_ABLATION=1 go test ./prune -run TestAutoLocalBudget -v
func TestAutoLocalBudget(t *testing.T) {
	testenv.Ablation(t)
	fx := load(t, "llama8")
	st, cal := calibrated(t, fx)
	for _, target := range []int{5, 6} {
		for _, v := range []struct {
			pool   int
			budget float64
		}{{8, 8}, {16, 8}, {8, 16}, {16, 16}} {
			sc := &scorer{model: fx.model, stack: st, cal: cal}
			a, err := newAutoEval(context.Background(), sc)
			if err != nil {
				t.Fatal(err)
			}
			cfg := defaultAuto
			cfg.MaxSpans, cfg.LocalSpans, cfg.KLBudget = 8, v.pool, v.budget
			res, err := autoSearch(context.Background(), a, 8, target, cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := res.report
			t.Logf("8→%d pool %d budget %g: %v KL %.4f (check %.4f) passes %.1f, %d measures", target, v.pool, v.budget, r.Windows, r.KL.All, r.KL.Check, r.Cost.Passes, r.Evaluations)
		}
	}
}
