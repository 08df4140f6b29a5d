package distill

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/onnxslm/onnxslm/runtime"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Rows are calibration rows of one window: X[i] enters it, Y[i] leaves it,
// each T tokens × the layer's hidden size, flattened.
type Rows struct {
	X, Y [][]float32
	T    int
}

// Options controls training. Zero values take the defaults.
type Options struct {
	Steps     int           // most optimizer steps (default 200)
	Budget    time.Duration // wall-clock limit (0: none); stopping on it is not reproducible
	Batch     int           // rows per step (default min(4, fit rows))
	LR        float64       // Adam's learning rate (default 3e-4)
	EvalEvery int           // steps between held-out evaluations (default one pass over the fit rows)
	Patience  int           // evaluations without improvement before stopping (default 3)
	Train     []string      // parameter names to train (Layer.Params); empty: all
	Progress  func(Progress)
}

// Progress is reported after every step; Held is NaN when the held-out rows
// were not evaluated at that step.
type Progress struct {
	Step       int
	Fit, Held  float64
	Elapsed    time.Duration
	Best       float64 // best held-out loss so far
	BestAtStep int
}

// Report says what training did. Losses are relative squared errors
// Σ‖layer(X)−Y‖² / Σ‖Y−X‖² over a set of rows: 1 is what a layer that adds
// nothing to the stream scores, 0 a perfect fit.
type Report struct {
	FitBefore, FitAfter   float64
	HeldBefore, HeldAfter float64 // NaN without held-out rows
	Steps                 int     // optimizer steps taken
	BestStep              int     // step whose weights were kept (0: the original ones)
	Stop                  string  // "steps", "budget" or "early"
	Elapsed               time.Duration
	Trained               []string
}

var useBLAS sync.Once

// Train fits a copy of l so that l(fit.X) ≈ fit.Y, with Adam (see adam) on
// gorgonia's symbolic gradients, and returns it. With held-out rows it evaluates them
// every EvalEvery steps, keeps the weights of the best evaluation (the
// original weights count as step 0, so the held-out loss never gets worse)
// and stops after Patience evaluations without improvement. The same inputs
// and a step budget give bit-identical weights.
//
// Train makes gorgonia (process-wide) multiply float32 matrices with the
// runtime's kernel.
func Train(ctx context.Context, l *Layer, fit, held Rows, opt Options) (*Layer, Report, error) {
	start := time.Now()
	var rep Report
	if err := l.Validate(); err != nil {
		return nil, rep, err
	}
	if err := checkRows("fit", fit, l.Hidden, true); err != nil {
		return nil, rep, err
	}
	if err := checkRows("held-out", held, l.Hidden, false); err != nil {
		return nil, rep, err
	}
	if len(held.X) > 0 && held.T != fit.T {
		return nil, rep, fmt.Errorf("distill: held-out rows of %d tokens, fit rows of %d", held.T, fit.T)
	}
	opt = opt.withDefaults(len(fit.X))
	useBLAS.Do(func() { G.Use(runtime.BLAS(0).(G.BLAS)) })

	n, err := buildNet(l, opt.Batch, fit.T, tensor.Float32)
	if err != nil {
		return nil, rep, err
	}
	y := G.NewMatrix(n.g, tensor.Float32, G.WithShape(n.x.Shape()...), G.WithName("y"))
	var delta float64
	for i := range fit.X {
		delta += sqDist(fit.X[i], fit.Y[i])
	}
	scale := 1.0
	if delta > 0 {
		scale = float64(len(fit.X)*fit.T*l.Hidden) / delta
	}
	cost, err := mseCost(n.out, y, scale)
	if err != nil {
		return nil, rep, err
	}
	trained, err := selectParams(n, opt.Train)
	if err != nil {
		return nil, rep, err
	}
	for _, p := range trained {
		rep.Trained = append(rep.Trained, p.Name())
	}
	if _, err := G.Grad(cost, trained...); err != nil {
		return nil, rep, fmt.Errorf("distill: gradients: %w", err)
	}
	vm := G.NewTapeMachine(n.g, G.BindDualValues(trained...))
	defer vm.Close()
	solver := newAdam(opt.LR)

	cur := l.Clone()
	best := l.Clone()
	if rep.FitBefore, err = Loss(l, fit); err != nil {
		return nil, rep, err
	}
	rep.HeldBefore, rep.HeldAfter = math.NaN(), math.NaN()
	bestHeld := math.Inf(1)
	if len(held.X) > 0 {
		if rep.HeldBefore, err = Loss(l, held); err != nil {
			return nil, rep, err
		}
		bestHeld = rep.HeldBefore
	}
	stale := 0
	rep.Stop = "steps"
	batchX, batchY := make([][]float32, opt.Batch), make([][]float32, opt.Batch)
	for step := 1; step <= opt.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, rep, fmt.Errorf("distill: training stopped at step %d: %w", step, err)
		}
		if opt.Budget > 0 && time.Since(start) >= opt.Budget {
			rep.Stop = "budget"
			break
		}
		for i := range batchX {
			r := ((step-1)*opt.Batch + i) % len(fit.X)
			batchX[i], batchY[i] = fit.X[r], fit.Y[r]
		}
		if err := setInput(n.x, batchX); err != nil {
			return nil, rep, err
		}
		if err := setInput(y, batchY); err != nil {
			return nil, rep, err
		}
		if err := vm.RunAll(); err != nil {
			return nil, rep, fmt.Errorf("distill: step %d: %w", step, err)
		}
		fitLoss := scalar(cost.Value())
		if err := solver.step(trained); err != nil {
			return nil, rep, fmt.Errorf("distill: step %d: %w", step, err)
		}
		vm.Reset()
		rep.Steps = step
		p := Progress{Step: step, Fit: fitLoss, Held: math.NaN(), Best: bestHeld, BestAtStep: rep.BestStep}
		if len(held.X) > 0 && (step%opt.EvalEvery == 0 || step == opt.Steps) {
			n.weights(cur)
			h, err := Loss(cur, held)
			if err != nil {
				return nil, rep, err
			}
			p.Held = h
			if h < bestHeld {
				bestHeld, rep.BestStep, stale = h, step, 0
				n.weights(best)
			} else {
				stale++
			}
			p.Best, p.BestAtStep = bestHeld, rep.BestStep
		}
		p.Elapsed = time.Since(start)
		if opt.Progress != nil {
			opt.Progress(p)
		}
		if len(held.X) > 0 && stale >= opt.Patience {
			rep.Stop = "early"
			break
		}
	}
	if len(held.X) == 0 {
		n.weights(best)
		rep.BestStep = rep.Steps
	}
	if rep.FitAfter, err = Loss(best, fit); err != nil {
		return nil, rep, err
	}
	if len(held.X) > 0 {
		rep.HeldAfter = bestHeld
	}
	rep.Elapsed = time.Since(start)
	return best, rep, nil
}

func (o Options) withDefaults(fitRows int) Options {
	if o.Steps <= 0 {
		o.Steps = 200
	}
	if o.Batch <= 0 {
		o.Batch = min(4, fitRows)
	}
	if o.LR <= 0 {
		o.LR = 3e-4
	}
	if o.EvalEvery <= 0 {
		o.EvalEvery = max(1, (fitRows+o.Batch-1)/o.Batch)
	}
	if o.Patience <= 0 {
		o.Patience = 3
	}
	return o
}

func checkRows(what string, r Rows, d int, need bool) error {
	if len(r.X) == 0 {
		if need {
			return fmt.Errorf("distill: no %s rows", what)
		}
		return nil
	}
	if len(r.Y) != len(r.X) {
		return fmt.Errorf("distill: %d %s inputs but %d outputs", len(r.X), what, len(r.Y))
	}
	if r.T <= 0 {
		return fmt.Errorf("distill: %s rows of %d tokens", what, r.T)
	}
	for i := range r.X {
		if len(r.X[i]) != r.T*d || len(r.Y[i]) != r.T*d {
			return fmt.Errorf("distill: %s row %d has %d inputs and %d outputs, want %d×%d", what, i, len(r.X[i]), len(r.Y[i]), r.T, d)
		}
	}
	return nil
}

// selectParams returns the parameter nodes named in names (all if empty).
func selectParams(n *net, names []string) (G.Nodes, error) {
	if len(names) == 0 {
		return append(G.Nodes{}, n.params...), nil
	}
	want := map[string]bool{}
	for _, s := range names {
		want[s] = true
	}
	var out G.Nodes
	for i, p := range n.params {
		if want[n.names[i]] {
			out = append(out, p)
			delete(want, n.names[i])
		}
	}
	for _, s := range names {
		if want[s] {
			return nil, fmt.Errorf("distill: no parameter %q in this layer (it has %v)", s, n.names)
		}
	}
	return out, nil
}

// mseCost is scale · mean((out − y)²).
func mseCost(out, y *G.Node, scale float64) (*G.Node, error) {
	d, err := G.Sub(out, y)
	if err != nil {
		return nil, err
	}
	if d, err = G.Square(d); err != nil {
		return nil, err
	}
	if d, err = G.Mean(d); err != nil {
		return nil, err
	}
	var c any = float32(scale)
	if out.Dtype() == tensor.Float64 {
		c = scale
	}
	return G.Mul(d, G.NewConstant(c))
}

func scalar(v G.Value) float64 {
	switch x := v.Data().(type) {
	case float32:
		return float64(x)
	case float64:
		return x
	}
	return math.NaN()
}

func sqDist(a, b []float32) float64 {
	var s float64
	for i, v := range a {
		d := float64(v) - float64(b[i])
		s += d * d
	}
	return s
}

// Loss is the relative squared error of l on rows: Σ‖l(X)−Y‖² / Σ‖Y−X‖²
// (the plain squared error when the window changes nothing).
func Loss(l *Layer, r Rows) (float64, error) {
	if err := checkRows("evaluation", r, l.Hidden, true); err != nil {
		return 0, err
	}
	var num, den float64
	for i := range r.X {
		out, err := Forward(l, r.X[i], r.T)
		if err != nil {
			return 0, err
		}
		num += sqDist(out, r.Y[i])
		den += sqDist(r.X[i], r.Y[i])
	}
	if den == 0 {
		return num, nil
	}
	return num / den, nil
}
