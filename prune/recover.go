package prune

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/distill"
	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Recovery (Options.Recover): after the windows are chosen and the model is
// rewritten, each layer of the result that stands for more than one original
// layer is trained (package distill) to map the stream entering its span of
// original layers to the stream leaving it, both cached by the calibration
// pass. A merged window's fused layer stands for the window; a layer kept
// below removed ones (drop, shortgpt) stands for itself and the gap above it
// (the lowest kept layer also for a gap under it). The trained tensors become
// new initializers in the dtype and layout of those they replace.
// docs/design/recovery.md says why and what it measured.

// DefaultRecoverSteps is the most optimizer steps per layer when
// Options.RecoverSteps is 0, for layers of up to recoverParamSteps/200
// parameters (10 M); larger layers get proportionally fewer, at least
// minRecoverSteps (a 1B-class layer of 51 M parameters: 39), so that a
// default run costs about the same per window whatever the model.
const DefaultRecoverSteps = 200

const (
	recoverParamSteps = 2e9
	minRecoverSteps   = 20
)

// defaultRecoverSteps is the step limit of a layer of n parameters.
func defaultRecoverSteps(n int64) int {
	return int(max(minRecoverSteps, min(DefaultRecoverSteps, recoverParamSteps/max(n, 1))))
}

// RecoverReport is what recovery did.
type RecoverReport struct {
	// Layer is the architecture the layers were trained as, found by
	// matching the original model's first layer.
	Layer         string          `json:"layer"`
	StepsLimit    int             `json:"steps_limit"`
	BudgetSeconds float64         `json:"budget_seconds,omitempty"` // per layer
	LearningRate  float64         `json:"learning_rate"`
	FitRows       int             `json:"fit_rows"`
	HeldRows      int             `json:"held_out_rows"`
	Windows       []RecoverWindow `json:"windows"`
	// Skipped says why nothing was trained when the layers are of an
	// architecture distill does not know (the model is then as pruned).
	Skipped string  `json:"skipped,omitempty"`
	Seconds float64 `json:"seconds"`
}

// RecoverWindow is one trained layer. Losses are Σ‖layer(X)−Y‖² / Σ‖Y−X‖²
// over calibration rows: 1 is a layer that adds nothing, 0 a perfect fit.
type RecoverWindow struct {
	// Layer is the layer's index in the result; From the original layers it
	// stands for (inclusive).
	Layer      int      `json:"layer"`
	From       [2]int   `json:"from"`
	FitBefore  float64  `json:"fit_before"`
	FitAfter   float64  `json:"fit_after"`
	HeldBefore *float64 `json:"held_out_before,omitempty"`
	HeldAfter  *float64 `json:"held_out_after,omitempty"`
	Steps      int      `json:"steps"`
	BestStep   int      `json:"best_step"` // 0: training did not help the held-out rows; the layer is unchanged
	Stop       string   `json:"stop"`      // "steps", "budget" or "early"
	Seconds    float64  `json:"seconds"`
}

// recoverSpan is a layer of the result and the original layers it stands for.
type recoverSpan struct{ layer, low, high int }

// recoverSpans lists the layers of a result (keptFrom[j]: original index of
// its layer j) that stand for more than one of the L original layers.
func recoverSpans(L int, keptFrom []int) []recoverSpan {
	var out []recoverSpan
	for j, k := range keptFrom {
		low, high := k, L-1
		if j == 0 {
			low = 0
		}
		if j+1 < len(keptFrom) {
			high = keptFrom[j+1] - 1
		}
		if high > low {
			out = append(out, recoverSpan{j, low, high})
		}
	}
	return out
}

// calibRows returns the cached stream at boundary i, one slice per
// calibration row (aliases the cache: read only), and the row length.
func (c *calibration) rowsAt(i int) ([][]float32, int) {
	var rows [][]float32
	t := 0
	for _, b := range c.batches {
		h := b.hidden[i]
		data := h.Float32Data()
		per := len(data) / len(b.rows)
		t = len(b.rows[0])
		for r := range b.rows {
			rows = append(rows, data[r*per:(r+1)*per])
		}
	}
	return rows, t
}

// recoverLayers trains the layers of out (the rewritten model, whose layer j
// came from original layer keptFrom[j]) that stand for several original
// layers, and returns the model with the trained tensors.
func recoverLayers(ctx context.Context, orig *pb.ModelProto, st *discover.Stack, cal *calibration, out *pb.ModelProto, keptFrom []int, opts Options, prog Progress) (*pb.ModelProto, *RecoverReport, error) {
	t0 := time.Now()
	steps := opts.RecoverSteps
	if steps == 0 {
		steps = defaultRecoverSteps(st.Layers[0].NumParams())
	}
	rep := &RecoverReport{StepsLimit: steps, BudgetSeconds: opts.RecoverBudget.Seconds(), Windows: []RecoverWindow{}}
	spans := recoverSpans(st.NumLayers(), keptFrom)
	if len(spans) == 0 {
		return out, rep, nil
	}
	x0, T := cal.rowsAt(0)
	n := len(x0)
	fitN := n
	if n >= 4 {
		fitN = n - n/4
	}
	rep.FitRows, rep.HeldRows = fitN, n-fitN

	// The architecture: what makes the original first layer's weights
	// compute what the runtime computed for it.
	lw0, err := readLayer(newTensorTable(orig), &st.Layers[0])
	if err != nil {
		rep.Skipped = "layer 0: " + err.Error()
		return out, rep, nil
	}
	y0, _ := cal.rowsAt(1)
	tp := min(T, 32)
	d := lw0.l.Hidden
	if len(x0[0]) != T*d {
		return nil, nil, fmt.Errorf("recover: the stream has %d values per row, not %d tokens × %d", len(x0[0]), T, d)
	}
	tol := 1e-3
	if st.Layers[0].Params[0].DType != "float32" {
		tol = 2e-2
	}
	arch, err := probeArch(lw0, x0[0][:tp*d], y0[0][:tp*d], tp, tol)
	if err != nil {
		rep.Skipped = "layer 0: " + err.Error()
		return out, rep, nil
	}
	rep.Layer = arch.String()

	newSt, err := discover.Find(out)
	if err != nil {
		return nil, nil, fmt.Errorf("recover: find the result's layers: %w", err)
	}
	g, err := graph.FromModel(out)
	if err != nil {
		return nil, nil, fmt.Errorf("recover: %w", err)
	}
	tensors := newTensorTable(out)
	lr := opts.recoverLR()
	rep.LearningRate = lr
	for _, s := range spans {
		wt := time.Now()
		lw, err := readLayer(tensors, &newSt.Layers[s.layer])
		if err != nil {
			return nil, nil, fmt.Errorf("recover: read layer %d: %w", s.layer, err)
		}
		l := lw.withArch(arch, T)
		xs, _ := cal.rowsAt(s.low)
		ys, _ := cal.rowsAt(s.high + 1)
		fit := distill.Rows{X: xs[:fitN], Y: ys[:fitN], T: T}
		held := distill.Rows{X: xs[fitN:], Y: ys[fitN:], T: T}
		prog.Start(fmt.Sprintf("recover layer %d (layers %d..%d)", s.layer, s.low, s.high), steps)
		trained, tr, err := distill.Train(ctx, l, fit, held, distill.Options{
			Steps: steps, Budget: opts.RecoverBudget, LR: lr, Patience: recoverPatience,
			Progress: func(distill.Progress) { prog.Tick() },
		})
		prog.Done()
		if err != nil {
			return nil, nil, fmt.Errorf("recover layer %d (layers %d..%d): %w", s.layer, s.low, s.high, err)
		}
		if tr.BestStep > 0 {
			if err := writeLayer(g, &newSt.Layers[s.layer], lw, trained, ".recovered"); err != nil {
				return nil, nil, fmt.Errorf("recover layer %d: write: %w", s.layer, err)
			}
		}
		w := RecoverWindow{Layer: s.layer, From: [2]int{s.low, s.high}, FitBefore: tr.FitBefore, FitAfter: tr.FitAfter,
			Steps: tr.Steps, BestStep: tr.BestStep, Stop: tr.Stop, Seconds: time.Since(wt).Seconds()}
		if !math.IsNaN(tr.HeldBefore) {
			hb, ha := tr.HeldBefore, tr.HeldAfter
			w.HeldBefore, w.HeldAfter = &hb, &ha
		}
		rep.Windows = append(rep.Windows, w)
	}
	g.RemoveDead()
	if err := g.Sort(); err != nil {
		return nil, nil, fmt.Errorf("recover: %w", err)
	}
	if err := g.Validate(); err != nil {
		return nil, nil, fmt.Errorf("recover: %w", err)
	}
	rep.Seconds = time.Since(t0).Seconds()
	return g.Model(), rep, nil
}

// recoverLR is the learning rate of recovery.
func (o Options) recoverLR() float64 {
	if o.RecoverLR > 0 {
		return o.RecoverLR
	}
	return defaultRecoverLR
}

// defaultRecoverLR: see docs/design/recovery.md.
const defaultRecoverLR = 3e-4

// recoverPatience is how many held-out evaluations (one per pass over the fit
// rows) without improvement stop training: a layer the least-squares repair
// already fits well gets worse for Adam's first steps before it improves.
const recoverPatience = 10
