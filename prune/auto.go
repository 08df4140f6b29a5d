package prune

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/slm"
)

// The auto method (docs/design/method.md): for a target depth it measures
// every window of 2..k+1 layers alone with every merge rule, each with a
// least-squares repair of its output, picks the cheapest sets of windows that
// remove exactly k layers by dynamic programming, and measures the best few
// sets whole. Candidates are ranked by the KL divergence between their
// next-token distributions and the original model's on the calibration set.

// autoConfig tunes the auto method's search.
type autoConfig struct {
	// Rules are the merge rules tried for every window.
	Rules []rewrite.Rule
	// MaxWindow caps a window's size; the search never needs more than k+1
	// layers (k = layers removed).
	MaxWindow int
	// Repair fits a linear repair for every window (ridge toward the identity,
	// strength Ridge relative to the data).
	Repair bool
	Ridge  float64
	// RidgeGrid: the chosen set's repairs are refitted with each of these
	// ridges and the one with the lowest KL on the check rows (held out from
	// the fits) is kept. Empty: keep Ridge.
	RidgeGrid []float64
	// Joint is how many of the cheapest combinations (by summed single-window
	// cost) are built and measured whole.
	Joint int
	// MaxSpans bounds the windows measured (each with every rule): a deeper
	// model has more windows than that, and only MaxSpans of them, screened
	// from the cached stream (screenSpans), are measured. 0: all.
	MaxSpans int
	// Local makes a screened search (more than MaxSpans windows) local
	// first (localSearch): max(MaxSpans, 2·L) windows are screened by span
	// influence, each option (window and rule) is fitted and measured by its
	// local error (one layer's run), and the options of lowest local error
	// are measured by KL until KLBudget full calibration passes are spent.
	Local    bool
	KLBudget float64
	// LocalSpans is the local stage's pool of windows (0: max(MaxSpans, 2·L)).
	LocalSpans int
}

// defaultAuto is the auto method's configuration. It was chosen on the
// calibration set only (KL on the rows held out from the repair fits); see
// docs/design/method.md for the measurements.
var defaultAuto = autoConfig{
	Rules:     []rewrite.Rule{rewrite.Paper, rewrite.Mean, rewrite.Code, rewrite.Drop},
	MaxWindow: 8,
	Repair:    true,
	Ridge:     0.01,
	RidgeGrid: []float64{0.001, 0.01, 0.1, 1},
	Joint:     8,
	MaxSpans:  20,
	Local:     true,
	KLBudget:  16,
}

// cost ranks candidates: the mean KL divergence (nats per token) from the
// original model's next-token distributions over all calibration rows. It is
// zero for the original model, so single-window costs add up.
func cost(m metrics) float64 { return m.All.KL }

// AutoReport says what the auto method measured and chose.
type AutoReport struct {
	Criterion string `json:"criterion"`
	// Windows are the chosen windows with their rule and whether a repair was
	// folded into the merged layer.
	Windows []AutoWindow `json:"windows"`
	// KL, NLL and Cos measure the result on the calibration rows that fitted the
	// repairs, on those held out from fitting, and on all rows.
	KL  AutoSplit `json:"kl"`
	NLL AutoSplit `json:"nll"`
	Cos AutoSplit `json:"cos"`
	// FitRows calibration rows fitted the repairs; CheckRows were held out.
	FitRows   int     `json:"fit_rows"`
	CheckRows int     `json:"check_rows"`
	Ridge     float64 `json:"ridge"`
	// RidgeTrials are the ridges tried for the chosen set, in order (the
	// default first).
	RidgeTrials []RidgeTrial `json:"ridge_trials,omitempty"`
	// Spans counts the windows of 2..k+1 layers (at most MaxWindow);
	// SpansMeasured those measured, all of them unless Screen says how they
	// were screened (a deep model).
	Spans         int    `json:"spans"`
	SpansMeasured int    `json:"spans_measured"`
	Screen        string `json:"screen,omitempty"`
	// LocalOptions counts the options measured by their local error only
	// (a local-first screened search).
	LocalOptions int `json:"local_options,omitempty"`
	// Options counts the single-window options measured; Combinations lists the
	// sets of windows measured whole.
	Options      int               `json:"options"`
	Combinations []AutoCombination `json:"combinations"`
	Evaluations  int               `json:"evaluations"`
	Fits         int               `json:"repair_fits"`
	Seconds      float64           `json:"seconds"`
	// Cost is what the search ran, in full calibration passes.
	Cost AutoCost `json:"cost"`
}

// AutoCost is the search's work in full calibration passes: one pass runs
// the calibration set through every layer and the LM head (with the KL that
// reads its logits), layers and head weighted by their multiply-adds per
// token. A candidate that starts at layer i costs (L − i)/L of the layers'
// share; a repair fit runs from its lowest changed layer up to the merged
// layer and no head.
type AutoCost struct {
	Passes float64 `json:"passes"`
	// Options, Sets and Ridge split Passes: the single-window options
	// (measures and fits), the sets measured whole, the ridge trials.
	Options float64 `json:"options"`
	Sets    float64 `json:"sets"`
	Ridge   float64 `json:"ridge"`
	// LayerRuns counts runs of the calibration set through one layer,
	// HeadRuns through the LM head; HeadShare is the head's share of a pass.
	LayerRuns float64 `json:"layer_runs"`
	HeadRuns  float64 `json:"head_runs"`
	HeadShare float64 `json:"head_share"`
}

// AutoSplit is one measure on the fit rows, the check rows and all rows.
type AutoSplit struct {
	Fit   float64 `json:"fit"`
	Check float64 `json:"check"`
	All   float64 `json:"all"`
}

// splits returns m's KL, NLL and cosine, each over the fit, check and all rows.
func splits(m metrics) (kl, nll, cos AutoSplit) {
	kl = AutoSplit{Fit: m.Fit.KL, Check: m.Check.KL, All: m.All.KL}
	nll = AutoSplit{Fit: m.Fit.NLL, Check: m.Check.NLL, All: m.All.NLL}
	cos = AutoSplit{Fit: m.Fit.Cos, Check: m.Check.Cos, All: m.All.Cos}
	return kl, nll, cos
}

// AutoWindow is one chosen window.
type AutoWindow struct {
	slm.Window
	Rule     string `json:"rule"`
	Repaired bool   `json:"repaired"`
	// KLAlone is the window's cost measured alone.
	KLAlone float64 `json:"kl_alone"`
}

// String renders the window as the summary does ("1..4 paper+repair"); it
// replaces slm.Window's, which knows no rule.
func (w AutoWindow) String() string {
	s := w.Window.String() + " " + w.Rule
	if w.Repaired {
		s += "+repair"
	}
	return s
}

// AutoCombination is one set of windows measured whole.
type AutoCombination struct {
	Windows  []AutoWindow `json:"windows"`
	Estimate float64      `json:"estimate"` // summed single-window costs
	KL       float64      `json:"kl"`
	KLCheck  float64      `json:"kl_check"` // on the rows held out from the repair fits
	Chosen   bool         `json:"chosen,omitempty"`
}

// RidgeTrial is the chosen set's KL on the check rows with repairs fitted at
// one ridge.
type RidgeTrial struct {
	Ridge   float64 `json:"ridge"`
	CheckKL float64 `json:"check_kl"`
}

// autoOption is one way to treat one window, measured alone.
type autoOption struct {
	win      rewrite.Window // Rule set; no Repair (refitted when chosen)
	repaired bool           // whether a repair was fitted when it was measured
	m        metrics
}

// autoResult is the auto method's decision.
type autoResult struct {
	plan   rewrite.Plan
	lowest int
	m      metrics
	report *AutoReport
	// options are the single-window options measured (for tests).
	options []autoOption
}

// autoSearch chooses windows, a merge rule for each and their repairs, to
// leave target of the L layers:
//
//  1. every window of 2..k+1 layers (k = L − target) is measured alone with
//     every rule (and its repair fitted alone): the window's cost;
//  2. a dynamic program over the layer sequence finds the Joint cheapest sets
//     of disjoint windows removing exactly k layers, costs taken as additive;
//  3. each of those sets is built whole (repairs refitted bottom-up, each with
//     those below in place) and measured; the cheapest is kept.
func autoSearch(ctx context.Context, a *autoEval, L, target int, cfg autoConfig) (*autoResult, error) {
	t0 := time.Now()
	e0, f0, w0 := a.evaluations, a.fits, a.sc.work
	rep := &AutoReport{Criterion: "mean KL(original ‖ candidate) of next-token distributions on the calibration rows", Ridge: cfg.Ridge,
		FitRows: a.fitRows, CheckRows: a.rows - a.fitRows, Windows: []AutoWindow{}, Combinations: []AutoCombination{}}
	if !cfg.Repair {
		rep.Ridge = 0
	}
	k := L - target
	if k <= 0 {
		return &autoResult{lowest: L, m: metrics{Fit: measures{Cos: 1}, Check: measures{Cos: 1}, All: measures{Cos: 1}}, report: rep}, nil
	}
	maxW := k + 1
	if cfg.MaxWindow > 0 {
		maxW = min(maxW, cfg.MaxWindow)
	}
	spans, total, err := screenSpans(L, k, maxW, cfg.MaxSpans, a.sc.cal.removedInfluence)
	if err != nil {
		return nil, err
	}
	rep.Spans = total
	if len(spans) < total {
		rep.Screen = fmt.Sprintf("%d of the %d windows: per size, those whose removed layers low+1..high turn the stream least (1 - cos(h_low+1, h_high+1)), round-robin over the sizes; then the neighbours of the best set's windows", len(spans), total)
	}
	opts := &autoOptions{a: a, cfg: cfg, measured: map[slm.Window]bool{}}
	var combos []slm.Combination
	if len(spans) < total && cfg.Local {
		if combos, err = localSearch(ctx, opts, L, k, maxW, rep); err != nil {
			return nil, err
		}
	} else {
		for _, sp := range spans {
			if err := opts.add(ctx, sp); err != nil {
				return nil, err
			}
		}
		if combos, err = slm.BestCombinations(L, k, opts.segs, max(1, cfg.Joint)); err != nil {
			return nil, err
		}
		if len(spans) < total {
			if combos, err = opts.lookAround(ctx, L, k, maxW, cfg.MaxSpans/2, combos); err != nil {
				return nil, err
			}
		}
	}
	rep.SpansMeasured, rep.Options = len(opts.measured), len(opts.singles)
	pc := a.passCost()
	w1 := a.sc.work
	rep.Cost.Options = pc.passes(w1.minus(w0))
	out, err := measureSets(ctx, a, opts, combos, L, rep)
	if err != nil {
		return nil, err
	}
	out.options = opts.singles
	w2 := a.sc.work
	rep.Cost.Sets = pc.passes(w2.minus(w1))
	if cfg.Repair && len(cfg.RidgeGrid) > 0 {
		if err := tuneRidge(ctx, a, out, cfg); err != nil {
			return nil, err
		}
	}
	all := a.sc.work.minus(w0)
	rep.Cost.Ridge = pc.passes(a.sc.work.minus(w2))
	rep.Cost.Passes = pc.passes(all)
	rep.Cost.LayerRuns, rep.Cost.HeadRuns, rep.Cost.HeadShare = all.layers, all.heads, pc.headShare()
	rep.KL, rep.NLL, rep.Cos = splits(out.m)
	rep.Evaluations, rep.Fits = a.evaluations-e0, a.fits-f0
	rep.Seconds = time.Since(t0).Seconds()
	return out, nil
}

// autoOptions are the single-window options measured so far: each window
// with each rule, its repair fitted alone.
type autoOptions struct {
	a        *autoEval
	cfg      autoConfig
	singles  []autoOption
	segs     []slm.Segment // one per single, for the dynamic program
	measured map[slm.Window]bool
}

// add measures window sp with every rule.
func (o *autoOptions) add(ctx context.Context, sp slm.Window) error {
	o.measured[sp] = true
	for _, rule := range o.cfg.Rules {
		if err := o.addOne(ctx, rewrite.Window{Window: sp, Rule: rule}); err != nil {
			return err
		}
	}
	return nil
}

// addOne measures window w (its rule set) alone, with its repair fitted.
func (o *autoOptions) addOne(ctx context.Context, w rewrite.Window) error {
	o.measured[w.Window] = true
	plan := rewrite.Plan{Windows: []rewrite.Window{w}}
	if o.cfg.Repair {
		var err error
		if plan, err = o.a.fitRepairs(ctx, plan, repairOptions{Ridge: o.cfg.Ridge}); err != nil {
			return err
		}
	}
	m, err := o.a.measure(ctx, plan, w.Low)
	if err != nil {
		return fmt.Errorf("window %d..%d (%s): %w", w.Low, w.High, w.Rule, err)
	}
	win := plan.Windows[0]
	if sameAsEarlier(o.singles, win, m) {
		return nil // another rule built the same layer (paper and code on two layers without biases)
	}
	// The fitted matrix (d×d floats) is not kept: hundreds of options
	// would hold gigabytes on a wide model. A chosen window is refitted
	// (the fit is deterministic).
	o.singles = append(o.singles, autoOption{win: rewrite.Window{Window: win.Window, Rule: win.Rule}, repaired: win.Repair != nil, m: m})
	o.segs = append(o.segs, slm.Segment{Window: win.Window, Removes: win.High - win.Low, Cost: cost(m), Choice: len(o.singles) - 1})
	return nil
}

// lookAround is a screened search's second step: the windows one layer off
// each window of the best set (shifted, grown or shrunk) are measured too, and
// the sets are found again, until the best set's neighbours are all measured
// or budget more windows have been. It returns the sets found last.
func (o *autoOptions) lookAround(ctx context.Context, L, k, maxW, budget int, combos []slm.Combination) ([]slm.Combination, error) {
	for extra := 0; extra < budget; {
		var next []slm.Window
		for _, sg := range combos[0].Segments {
			w := o.singles[sg.Choice].win
			for _, d := range [][2]int{{-1, -1}, {1, 1}, {-1, 0}, {0, 1}, {1, 0}, {0, -1}} {
				n := slm.Window{Low: w.Low + d[0], High: w.High + d[1]}
				if size := n.Size(); n.Low >= 0 && n.High < L && size >= 2 && size <= maxW && !o.measured[n] && !slices.Contains(next, n) {
					next = append(next, n)
				}
			}
		}
		if len(next) == 0 {
			break
		}
		next = next[:min(len(next), budget-extra)]
		for _, sp := range next {
			if err := o.add(ctx, sp); err != nil {
				return nil, err
			}
		}
		extra += len(next)
		var err error
		if combos, err = slm.BestCombinations(L, k, o.segs, max(1, o.cfg.Joint)); err != nil {
			return nil, err
		}
	}
	return combos, nil
}

// measureSets builds each set of windows whole, its repairs refitted
// bottom-up, measures it and keeps the cheapest; the report gets every set.
func measureSets(ctx context.Context, a *autoEval, opts *autoOptions, combos []slm.Combination, L int, rep *AutoReport) (*autoResult, error) {
	out := &autoResult{report: rep}
	best := -1
	for _, c := range combos {
		var plan rewrite.Plan
		lowest := L
		for _, s := range c.Segments {
			plan.Windows = append(plan.Windows, opts.singles[s.Choice].win)
			lowest = min(lowest, opts.singles[s.Choice].win.Low)
		}
		if opts.cfg.Repair {
			var err error
			if plan, err = a.fitRepairs(ctx, plan, repairOptions{Ridge: opts.cfg.Ridge}); err != nil {
				return nil, err
			}
		}
		var m metrics
		if len(c.Segments) == 1 {
			m = opts.singles[c.Segments[0].Choice].m // measured alone already, with this very repair
		} else {
			var err error
			if m, err = a.measure(ctx, plan, lowest); err != nil {
				return nil, err
			}
		}
		ac := AutoCombination{Estimate: c.Cost, KL: cost(m), KLCheck: m.Check.KL}
		for i, s := range c.Segments {
			ac.Windows = append(ac.Windows, autoWindow(plan.Windows[i], opts.singles[s.Choice].m))
		}
		rep.Combinations = append(rep.Combinations, ac)
		if best < 0 || cost(m) < cost(out.m) {
			best = len(rep.Combinations) - 1
			out.plan, out.lowest, out.m = plan, lowest, m
		}
	}
	rep.Combinations[best].Chosen = true
	rep.Windows = rep.Combinations[best].Windows
	return out, nil
}

// tuneRidge refits the chosen set's repairs with each ridge of the grid and
// keeps the one with the lowest KL on the check rows (held out from the fits).
// Few calibration tokens for a wide model overfit the d×d repairs: when the
// grid's largest ridge is the best, larger ones are tried (×10 each, up to
// three) while they keep improving the check rows.
func tuneRidge(ctx context.Context, a *autoEval, out *autoResult, cfg autoConfig) error {
	rep := out.report
	bestChk := out.m.Check.KL
	trials := []RidgeTrial{{Ridge: cfg.Ridge, CheckKL: bestChk}}
	try := func(r float64) error {
		plan := rewrite.Plan{Windows: append([]rewrite.Window(nil), out.plan.Windows...)}
		for i := range plan.Windows {
			plan.Windows[i].Repair = nil
		}
		plan, err := a.fitRepairs(ctx, plan, repairOptions{Ridge: r})
		if err != nil {
			return err
		}
		m, err := a.measure(ctx, plan, out.lowest)
		if err != nil {
			return err
		}
		trials = append(trials, RidgeTrial{Ridge: r, CheckKL: m.Check.KL})
		if m.Check.KL < bestChk {
			bestChk = m.Check.KL
			out.plan, out.m, rep.Ridge = plan, m, r
		}
		return nil
	}
	for _, r := range cfg.RidgeGrid {
		if r != cfg.Ridge {
			if err := try(r); err != nil {
				return err
			}
		}
	}
	edge := slices.Max(append([]float64{cfg.Ridge}, cfg.RidgeGrid...))
	for range 3 {
		if rep.Ridge != edge {
			break
		}
		edge *= 10
		if err := try(edge); err != nil {
			return err
		}
	}
	rep.RidgeTrials = trials // in the order tried, the default ridge first
	return nil
}

func autoWindow(w rewrite.Window, alone metrics) AutoWindow {
	return AutoWindow{Window: w.Window, Rule: string(w.Rule), Repaired: w.Repair != nil, KLAlone: cost(alone)}
}

// sameAsEarlier reports whether an option for the same window, repaired
// alike, measured the same as m (to 1e-6 relative): another rule that built
// the same layer up to rounding.
func sameAsEarlier(opts []autoOption, w rewrite.Window, m metrics) bool {
	near := func(a, b float64) bool { return !(math.Abs(a-b) > 1e-6*max(math.Abs(a), math.Abs(b), 1e-9)) }
	same := func(a, b metrics) bool {
		for _, p := range [][2]measures{{a.Fit, b.Fit}, {a.Check, b.Check}, {a.All, b.All}} {
			if !near(p[0].KL, p[1].KL) || !near(p[0].NLL, p[1].NLL) || !near(p[0].Cos, p[1].Cos) {
				return false
			}
		}
		return true
	}
	for _, o := range opts {
		if o.win.Low == w.Low && o.win.High == w.High && o.repaired == (w.Repair != nil) &&
			same(o.m, m) {
			return true
		}
	}
	return false
}

// decideAuto is the auto method's decision for prune.Run. Without a target
// depth (a threshold was given) the depth is the one the paper's loop reaches
// at that threshold.
func decideAuto(ctx context.Context, sc *scorer, L, target int, opts Options, rep *Report) (rewrite.Plan, int, error) {
	if target == 0 {
		var err error
		if target, err = depthAtThreshold(ctx, sc, L, opts.Threshold, rep); err != nil {
			return rewrite.Plan{}, 0, err
		}
	}
	a, err := newAutoEval(ctx, sc)
	if err != nil {
		return rewrite.Plan{}, 0, err
	}
	res, err := autoSearch(ctx, a, L, target, defaultAuto)
	if err != nil {
		return rewrite.Plan{}, 0, fmt.Errorf("auto: %w", err)
	}
	rep.Auto = res.report
	rep.Merge = "per-window" // each window's rule is in rep.Auto.Windows
	sort.SliceStable(res.plan.Windows, func(i, j int) bool { return res.plan.Windows[i].Low < res.plan.Windows[j].Low })
	return res.plan, res.lowest, nil
}
