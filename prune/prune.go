// Package prune is onnxslm's end-to-end job: find the decoder layers of a
// model, run it on calibration tokens, decide which layers to merge or remove
// (package slm, or a baseline), and rewrite the model accordingly, with a
// report of what was done and why.
package prune

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/slm"
)

// Method is how layers are chosen.
type Method string

const (
	// SLM is the paper's sliding-window loop; windows are merged with Options.Merge.
	SLM Method = "slm"
	// ShortGPT removes the layers of lowest Block Influence (Men et al., 2024).
	ShortGPT Method = "shortgpt"
	// Drop removes the upper layers of each window SLM (paper rule) chooses, without merging.
	Drop Method = "drop"
	// Auto searches windows, a merge rule per window and a least-squares repair
	// for the best next-token fidelity at a depth (auto.go, docs/design/method.md).
	Auto Method = "auto"
)

// Methods lists the methods.
var Methods = []Method{SLM, ShortGPT, Drop, Auto}

// DefaultPruneRatio is the share of layers removed when neither a threshold
// nor a depth is asked for.
const DefaultPruneRatio = 0.25

// Options configure a pruning run.
type Options struct {
	// Method is how layers are chosen; "" means Auto.
	Method Method
	// Merge is the rule that fuses a window's weights, for method SLM only
	// ("" means rewrite.Paper); the other methods choose their own (Check).
	Merge rewrite.Rule
	// Threshold: SLM extends a window while the candidate's similarity is above it.
	// Zero means: reach a depth instead (Layers, PruneRatio or the default ratio).
	Threshold float64
	// Layers is the depth to reach; PruneRatio the share of layers to remove
	// (rounded to the nearest layer count). At most one of Threshold, Layers,
	// PruneRatio may be set.
	Layers     int
	PruneRatio float64
	// Calibration is the token rows the model runs on (all of one length).
	Calibration [][]int64
	// Batch is the number of calibration sequences per run (0: 8).
	Batch int
	// KeepKVNumbers keeps the original layer numbers in KV-cache input/output names.
	KeepKVNumbers bool
	// Runtime tunes the Go runtime.
	Runtime runtime.Options
	// Version is recorded in the output's metadata.
	Version string
	// FullRerun makes the search naive, for benchmarks: every candidate of the
	// loop, including those that merge nothing, is scored by running the whole
	// model from the token ids, instead of starting from the cached stream
	// entering its lowest changed layer and reusing known scores.
	FullRerun bool
	// Recover trains each layer of the result that stands for several
	// original layers toward them (recover.go); RecoverSteps (0: 200) and
	// RecoverBudget (per layer, 0: none) bound it, RecoverLR is Adam's rate
	// (0: the default).
	Recover       bool
	RecoverSteps  int
	RecoverBudget time.Duration
	RecoverLR     float64
	// Progress, when set, hears about long steps.
	Progress Progress

	// ParamsRatio, when set, is the share of the decoder layers' parameters
	// to remove, by depth and by width (MLP channels and attention heads)
	// together; the mix is searched on the calibration KL unless WidthRatio
	// fixes the share asked of width. WidthScore and WidthAlloc fix how
	// channels (and heads) are scored and how channels are spread; "" tries
	// each and keeps the least KL. WidthHeads fixes the query heads every
	// layer loses (whole KV groups; 0: channels only); nil tries each number
	// of groups that fits. See width.go and width_heads.go.
	ParamsRatio float64
	WidthRatio  *float64
	WidthScore  WidthScore
	WidthAlloc  WidthAlloc
	WidthHeads  *int
}

// Progress receives reports of long steps. Start is called once per step with
// the number of units it has (0 when unknown); Tick once per unit done; Note
// with a short account of where the step stands (the depth search's last
// threshold), which replaces the previous one.
type Progress interface {
	Start(step string, total int)
	Tick()
	Note(string)
	Done()
}

// Report says what a run did and why; it is written as JSON by --report.
type Report struct {
	Tool          string  `json:"tool"`
	Method        Method  `json:"method"`
	Merge         string  `json:"merge,omitempty"`
	Threshold     float64 `json:"threshold"`
	ThresholdFrom string  `json:"threshold_from"` // "flag" or "depth search"
	TargetLayers  int     `json:"target_layers,omitempty"`
	ReachedTarget bool    `json:"reached_target"`
	LayersBefore  int     `json:"layers_before"`
	LayersAfter   int     `json:"layers_after"`
	// Windows are the merged windows, original layer indices, inclusive.
	Windows       [][2]int `json:"windows"`
	RemovedLayers []int    `json:"removed_layers"`
	KeptFrom      []int    `json:"kept_from"`
	// Requantized: merged quantized projections and their re-quantization error.
	Requantized []rewrite.Requantized `json:"requantized,omitempty"`
	// Similarity is the merge criterion of the result: the mean cosine between the
	// final-normed hidden states of the result and of the original model.
	Similarity       float64              `json:"similarity"`
	Trace            []TraceStep          `json:"trace"`
	Auto             *AutoReport          `json:"auto,omitempty"`
	Recover          *RecoverReport       `json:"recover,omitempty"`
	Width            *WidthReport         `json:"width,omitempty"`
	ThresholdsTried  []slm.ThresholdTrial `json:"thresholds_tried,omitempty"`
	BlockInfluence   []float64            `json:"block_influence"`
	ParametersBefore int64                `json:"parameters_before"`
	ParametersAfter  int64                `json:"parameters_after"`
	Calibration      CalibrationInfo      `json:"calibration"`
	Candidates       int                  `json:"candidates_evaluated"`
	CandidateSeconds float64              `json:"candidate_seconds"`
	WallSeconds      float64              `json:"wall_seconds"`
}

// TraceStep is one scored candidate of the sliding loop.
type TraceStep struct {
	slm.Window
	Sim    float64 `json:"sim"`
	Action string  `json:"action"`
}

// String renders the step as a trace line ("3..5 0.912345 extend"):
// Window's String would print only its layers.
func (s TraceStep) String() string {
	return fmt.Sprintf("%s %.6f %s", s.Window, s.Sim, s.Action)
}

// CalibrationInfo describes the calibration set.
type CalibrationInfo struct {
	Sequences int `json:"sequences"`
	SeqLen    int `json:"seq_len"`
	Tokens    int `json:"tokens"`
}

// Outcome is the pruned model and its report.
type Outcome struct {
	Model  *pb.ModelProto
	Report *Report

	// plan and rewriteOpts made Model (runMerged applies them to the
	// with-past half of a merged decoder too).
	plan        rewrite.Plan
	rewriteOpts rewrite.Options
}

// TargetDepth turns a prune ratio into a layer count: the number of layers
// removed is ratio·layers rounded half up, and at least one layer is kept.
func TargetDepth(layers int, ratio float64) int {
	removed := int(math.Floor(ratio*float64(layers) + 0.5))
	return max(1, layers-removed)
}

// Run prunes m. m is not modified.
func Run(ctx context.Context, m *pb.ModelProto, opts Options) (*Outcome, error) {
	t0 := time.Now()
	if err := opts.resolve(); err != nil {
		return nil, err
	}
	if merged.Is(m) {
		return runMerged(ctx, m, opts)
	}
	// The runtime checks the model first, with one calibration sequence: its
	// errors name the node, op and dtype, where discovery would only see a graph
	// that is not a stack of layers.
	if opts.Runtime.Constants == nil {
		// Candidate models share the original's weights: decode them once.
		opts.Runtime.Constants = runtime.NewConstants(m)
	}
	sess, err := runtime.New(m, opts.Runtime)
	if err != nil {
		return nil, fmt.Errorf("prepare model: %w", err)
	}
	// (A model whose inputs are not a language model's, say an encoder-decoder,
	// is left to discovery, which says why it is not a decoder stack.)
	if feeds, err := lm.Feeds(sess, opts.Calibration[:1]); err == nil {
		if _, err := sess.RunContext(ctx, feeds, nil); err != nil {
			return nil, fmt.Errorf("run model: %w", err)
		}
	}
	st, err := discover.Find(m)
	if err != nil {
		return nil, fmt.Errorf("find decoder layers: %w", err)
	}
	L := st.NumLayers()
	target := 0
	switch {
	case opts.Layers > 0:
		target = opts.Layers
		if target > L {
			return nil, optionErr(fmt.Sprintf("the model has only %d layers", L), OptionValue{"Layers", target})
		}
	case opts.PruneRatio > 0:
		target = TargetDepth(L, opts.PruneRatio)
	case opts.Threshold == 0:
		target = TargetDepth(L, DefaultPruneRatio)
	}
	prog := progressOr(opts.Progress)
	cal, err := calibrateReported(ctx, sess, st, opts.Calibration, opts.Batch, prog)
	if err != nil {
		return nil, err
	}
	sc := &scorer{model: m, stack: st, cal: cal, rt: opts.Runtime, fullRerun: opts.FullRerun, step: prog.Tick, note: prog.Note}

	rep := &Report{
		Tool:           "onnxslm " + opts.Version,
		Method:         opts.Method,
		LayersBefore:   L,
		TargetLayers:   target,
		BlockInfluence: cal.blockInfluence,
		Calibration:    CalibrationInfo{Sequences: len(opts.Calibration), SeqLen: len(opts.Calibration[0]), Tokens: cal.tokens},
	}
	rep.ParametersBefore, _ = onnx.Parameters(m)

	if opts.ParamsRatio > 0 {
		prog.Start("candidates", 0)
		defer prog.Done()
		out, err := runParams(ctx, sc, L, opts, rep, t0)
		if err == nil && opts.Recover {
			out.Report.Recover = &RecoverReport{Windows: []RecoverWindow{}, Skipped: "not applied with a parameter target (ParamsRatio) yet"}
		}
		return out, err
	}
	prog.Start("candidates", 0)
	plan, lowest, err := decide(ctx, sc, L, target, opts, rep)
	prog.Done()
	if err != nil {
		return nil, err
	}
	if len(plan.Windows) == 0 && len(plan.Remove) == 0 {
		rep.Similarity = 1
	} else {
		rep.Similarity, err = sc.score(ctx, plan, lowest)
		if err != nil {
			return nil, fmt.Errorf("score the result: %w", err)
		}
	}

	th := opts.Threshold
	if rep.ThresholdFrom == "depth search" || opts.Method == SLM || opts.Method == Drop {
		th = rep.Threshold
	}
	meta := rewrite.Meta{Version: opts.Version, Method: methodName(opts), Extra: map[string]string{}}
	if opts.Method != ShortGPT && opts.Method != Auto {
		meta.Threshold = &th
	}
	meta.Extra["similarity"] = fmt.Sprintf("%.6f", rep.Similarity)
	if opts.Recover {
		meta.Extra["recover"] = "distill"
	}
	rwOpts := rewrite.Options{KeepKVNumbers: opts.KeepKVNumbers, Meta: meta, BLAS: runtime.BLAS(opts.Runtime.Threads)}
	res, err := rewrite.Merge(m, st, plan, rwOpts)
	if err != nil {
		return nil, fmt.Errorf("build the pruned model: %w", err)
	}
	if opts.Recover {
		if res.Model, rep.Recover, err = recoverLayers(ctx, m, st, cal, res.Model, res.KeptFrom, opts, prog); err != nil {
			return nil, err
		}
	}
	rep.LayersAfter = res.LayersAfter
	rep.KeptFrom = res.KeptFrom
	rep.Requantized = res.Requantized
	rep.ReachedTarget = target == 0 || rep.LayersAfter == target
	for _, w := range plan.Windows {
		if w.High > w.Low {
			rep.Windows = append(rep.Windows, [2]int{w.Low, w.High})
		}
	}
	rep.RemovedLayers = removedLayers(L, res.KeptFrom)
	rep.ParametersAfter, _ = onnx.Parameters(res.Model)
	rep.Candidates = sc.evaluations
	rep.CandidateSeconds = sc.elapsed.Seconds()
	rep.WallSeconds = time.Since(t0).Seconds()
	if rep.Windows == nil {
		rep.Windows = [][2]int{}
	}
	if rep.Trace == nil {
		rep.Trace = []TraceStep{}
	}
	return &Outcome{Model: res.Model, Report: rep, plan: plan, rewriteOpts: rwOpts}, nil
}

// methodName is the method as recorded in metadata, with the names the
// reference files use (slm_authors_code for the authors' merge rule).
func methodName(o Options) string {
	if o.Method == SLM && o.Merge == rewrite.Code {
		return "slm_authors_code"
	}
	return string(o.Method)
}

// resolve checks o and fills in the defaults of Method and Merge.
func (o *Options) resolve() error {
	if err := o.Check(); err != nil {
		return err
	}
	if err := checkRows(o.Calibration); err != nil {
		return err
	}
	o.Method = o.method()
	if o.Method == SLM {
		o.Merge = o.merge()
	}
	return nil
}

// decide chooses the plan. It fills the report's decision fields and returns
// the plan and the lowest layer it changes.
func decide(ctx context.Context, sc *scorer, L, target int, opts Options, rep *Report) (rewrite.Plan, int, error) {
	switch opts.Method {
	case SLM, Drop:
		rule := opts.Merge
		if opts.Method == Drop {
			rule = rewrite.Paper // windows chosen as SLM's paper rule would, then dropped
		}
		atEnd := slm.CommitPending
		if rule == rewrite.Code {
			atEnd = slm.DropPending
		}
		res, err := slide(ctx, sc, rule, atEnd, L, target, opts.Threshold, rep)
		if err != nil {
			return rewrite.Plan{}, 0, err
		}
		finalRule := opts.Merge
		if opts.Method == Drop {
			finalRule = rewrite.Drop
		} else {
			rep.Merge = string(opts.Merge)
		}
		plan := rewrite.Plan{Rule: finalRule}
		lowest := L
		for _, w := range res.Windows {
			plan.Windows = append(plan.Windows, rewrite.Window{Window: w})
			lowest = min(lowest, w.Low)
		}
		return plan, lowest, nil
	case Auto:
		return decideAuto(ctx, sc, L, target, opts, rep)
	case ShortGPT:
		if target == 0 {
			var err error
			if target, err = depthAtThreshold(ctx, sc, L, opts.Threshold, rep); err != nil {
				return rewrite.Plan{}, 0, err
			}
		}
		removed, err := slm.ShortGPT(sc.cal.blockInfluence, target)
		if err != nil {
			return rewrite.Plan{}, 0, err
		}
		lowest := L
		for _, r := range removed {
			lowest = min(lowest, r)
		}
		return rewrite.Plan{Remove: removed}, lowest, nil
	}
	return rewrite.Plan{}, 0, fmt.Errorf("unknown method %q", opts.Method)
}

// slide runs the sliding loop at a threshold, or searches the threshold that
// reaches target layers.
func slide(ctx context.Context, sc *scorer, rule rewrite.Rule, atEnd slm.Pending, L, target int, threshold float64, rep *Report) (*slm.Result, error) {
	ev := &slm.Memo{Inner: windowScorer{scorer: sc, rule: rule}}
	var res *slm.Result
	if target > 0 {
		trial := func(tr slm.ThresholdTrial) {
			if sc.note != nil {
				sc.note(fmt.Sprintf("threshold %.6f: %d layers, target %d", tr.Threshold, tr.Layers, target))
			}
		}
		ds, err := slm.SearchDepth(ctx, L, target, ev, slm.DepthOptions{AtEnd: atEnd, Trial: trial})
		if err != nil {
			return nil, err
		}
		res = ds.Result
		rep.Threshold, rep.ThresholdFrom, rep.ThresholdsTried = ds.Threshold, "depth search", ds.Tried
	} else {
		var err error
		res, err = slm.Slide(ctx, L, ev, slm.Options{Threshold: threshold, AtEnd: atEnd, ScoreUnchanged: sc.fullRerun})
		if err != nil {
			return nil, err
		}
		rep.Threshold, rep.ThresholdFrom = threshold, "flag"
	}
	rep.Trace = rep.Trace[:0]
	for _, s := range res.Trace {
		rep.Trace = append(rep.Trace, TraceStep{Window: s.Window, Sim: s.Sim, Action: s.ActionText()})
	}
	return res, nil
}

// removedLayers lists the original layers not kept.
func removedLayers(L int, keptFrom []int) []int {
	kept := map[int]bool{}
	for _, k := range keptFrom {
		kept[k] = true
	}
	out := []int{}
	for i := 0; i < L; i++ {
		if !kept[i] {
			out = append(out, i)
		}
	}
	sort.Ints(out)
	return out
}

// progressOr is p, or a Progress that ignores the reports when p is nil.
func progressOr(p Progress) Progress {
	if p == nil {
		return nopProgress{}
	}
	return p
}

// calibrateReported runs calibrate on rows in minibatches of batch (≤ 0: 8)
// as one step of prog.
func calibrateReported(ctx context.Context, sess *runtime.Session, st *discover.Stack, rows [][]int64, batch int, prog Progress) (*calibration, error) {
	if batch <= 0 {
		batch = 8
	}
	prog.Start("calibration", calibrationSteps(st.NumLayers()))
	defer prog.Done()
	return calibrate(ctx, sess, st, rows, batch, prog.Tick)
}

type nopProgress struct{}

func (nopProgress) Start(string, int) {}
func (nopProgress) Tick()             {}
func (nopProgress) Note(string)       {}
func (nopProgress) Done()             {}

// depthAtThreshold is the depth the paper's loop (paper rule) reaches at
// threshold th: the target of the methods that work at a depth (auto,
// shortgpt) when a threshold is given instead. It records it in the report.
func depthAtThreshold(ctx context.Context, sc *scorer, L int, th float64, rep *Report) (int, error) {
	res, err := slide(ctx, sc, rewrite.Paper, slm.CommitPending, L, 0, th, rep)
	if err != nil {
		return 0, err
	}
	rep.TargetLayers = slm.LayersAfter(L, res.Windows)
	return rep.TargetLayers, nil
}
