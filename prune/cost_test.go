package prune

import (
	"context"
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

func TestPassCost(t *testing.T) {
	pc := passCost{L: 4, layerParams: 100, headParams: 200} // a pass: 4·100 + 200 = 600
	tests := []struct {
		w    work
		want float64
	}{
		{work{layers: 4, heads: 1}, 1},
		{work{layers: 2, heads: 1}, 400.0 / 600},
		{work{layers: 1}, 100.0 / 600},
		{work{heads: 3}, 1},
	}
	for _, tc := range tests {
		if got := pc.passes(tc.w); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("passes(%+v) = %g, want %g", tc.w, got, tc.want)
		}
	}
	if got := pc.headShare(); math.Abs(got-1.0/3) > 1e-12 {
		t.Errorf("head share %g, want 1/3", got)
	}
}

// TestAutoCostAccounts: the report's cost adds up (its phases make its
// total) and a search measures more than one pass but each candidate at most
// one.
func TestAutoCostAccounts(t *testing.T) {
	out := runGenerated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 6, Hidden: 16, Heads: 2, FFN: 24, Seed: 11},
		Options{Layers: 4, Calibration: randomRows(8, 16, 7), Batch: 4, Version: "test"})
	c := out.Report.Auto.Cost
	if sum := c.Options + c.Sets + c.Ridge; math.Abs(sum-c.Passes) > 1e-9 {
		t.Errorf("phases %g + %g + %g = %g, total %g", c.Options, c.Sets, c.Ridge, sum, c.Passes)
	}
	measures := float64(out.Report.Auto.Evaluations)
	runs := measures + float64(out.Report.Auto.Fits)
	if c.Passes <= 1 || c.Passes > runs || c.HeadRuns > measures || c.HeadShare <= 0 || c.HeadShare >= 1 {
		t.Errorf("cost %+v for %g candidate runs", c, runs)
	}
}

// TestAutoCostTable prints the default method's cost on the cells of
// docs/design/method.md (ONNXSLM_ABLATION=1 go test ./prune -run
// TestAutoCostTable -v).
func TestAutoCostTable(t *testing.T) {
	testenv.Ablation(t)
	type cell struct {
		name   string
		m      *pb.ModelProto
		rows   [][]int64
		target int
		batch  int
	}
	var cells []cell
	for _, c := range []struct {
		name   string
		target int
	}{{"llama8", 6}, {"llama8", 5}, {"gpt2_6", 4}} {
		fx := load(t, c.name)
		cells = append(cells, cell{c.name, fx.model, fx.calib, c.target, 8})
	}
	deep, err := modelgen.Build(modelgen.Config{Arch: modelgen.Llama, Layers: 12, Hidden: 16, Heads: 2, FFN: 24, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	cells = append(cells, cell{"gen12 (d 16)", deep, randomRows(8, 16, 7), 8, 4})
	for _, c := range cells {
		out, err := Run(context.Background(), c.m, Options{Layers: c.target, Calibration: c.rows, Batch: c.batch, Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		a := out.Report.Auto
		t.Logf("%s → %d: passes %.2f (options %.2f, sets %.2f, ridge %.2f; head share %.3f), %d measures + %d fits, KL %.4f (check %.4f), windows %v",
			c.name, c.target, a.Cost.Passes, a.Cost.Options, a.Cost.Sets, a.Cost.Ridge, a.Cost.HeadShare, a.Evaluations, a.Fits, a.KL.All, a.KL.Check, a.Windows)
	}
}
