package prune

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/onnxslm/onnxslm/rewrite"
)

// OptionError is a mistake in Options or AnalyzeOptions: a value out of range,
// options that exclude each other, or an option the chosen method does not
// use. It names the options at fault by their field names, so a caller with
// its own vocabulary (the CLI's flags) can say it in that vocabulary.
type OptionError struct {
	// Options are the options at fault, in the order they are named.
	Options []OptionValue
	// Reason says what is wrong, without naming the options.
	Reason string
}

// OptionValue is one option at fault and the value it was given.
type OptionValue struct {
	// Name is the field's name in Options ("Merge", "Runtime.Threads").
	Name  string
	Value any
}

func (e *OptionError) Error() string { return e.Format(nil) }

// Format renders the error with each option's name passed through name (nil
// keeps the field names): "Merge code with Method auto: reason".
func (e *OptionError) Format(name func(field string) string) string {
	parts := make([]string, len(e.Options))
	for i, o := range e.Options {
		n := o.Name
		if name != nil {
			n = name(n)
		}
		parts[i] = fmt.Sprintf("%s %v", n, o.Value)
	}
	return strings.Join(parts, " with ") + ": " + e.Reason
}

func optionErr(reason string, opts ...OptionValue) *OptionError {
	return &OptionError{Options: opts, Reason: reason}
}

// mergeRuleUse says, for each method, whether it reads Options.Merge and, if
// not, why not.
var mergeRuleUse = map[Method]string{
	SLM:      "",
	ShortGPT: "shortgpt removes layers, it merges none",
	Drop:     "drop removes the upper layers of each window without merging",
	Auto:     "auto chooses a merge rule for each window",
}

// Check reports the first mistake in o as an *OptionError, before any work:
// values out of range, more than one of Threshold, Layers and PruneRatio, an
// unknown method or rule, or a Merge rule the method does not use. The
// calibration rows are checked by Run (a caller may check its options before
// it has loaded them).
func (o Options) Check() error {
	var depth []OptionValue
	if o.Threshold != 0 {
		depth = append(depth, OptionValue{"Threshold", o.Threshold})
	}
	if o.Layers != 0 {
		depth = append(depth, OptionValue{"Layers", o.Layers})
	}
	if o.PruneRatio != 0 {
		depth = append(depth, OptionValue{"PruneRatio", o.PruneRatio})
	}
	if len(depth) > 1 {
		return optionErr("give at most one of these", depth...)
	}
	if !(o.Threshold >= 0 && o.Threshold <= 1) { // also refuses NaN
		return optionErr("want a similarity in (0, 1]", OptionValue{"Threshold", o.Threshold})
	}
	if !(o.PruneRatio >= 0 && o.PruneRatio < 1) {
		return optionErr("want a share of the layers in (0, 1)", OptionValue{"PruneRatio", o.PruneRatio})
	}
	if o.Layers < 0 {
		return optionErr("want a layer count, at least 1", OptionValue{"Layers", o.Layers})
	}
	if o.Batch < 0 {
		return optionErr("want a number of sequences, at least 1 (0 for the default)", OptionValue{"Batch", o.Batch})
	}
	if o.Runtime.Threads < 0 {
		return optionErr("want a number of goroutines, at least 1 (0 for all cores)", OptionValue{"Runtime.Threads", o.Runtime.Threads})
	}
	if err := o.checkRecover(); err != nil {
		return err
	}
	if err := o.checkWidth(); err != nil {
		return err
	}
	method := o.method()
	unused, ok := mergeRuleUse[method]
	if !ok {
		return optionErr(fmt.Sprintf("want one of %v", Methods), OptionValue{"Method", method})
	}
	if o.Merge != "" {
		if _, err := rewrite.ParseRule(string(o.Merge)); err != nil {
			return optionErr(fmt.Sprintf("want one of %v", rewrite.Rules), OptionValue{"Merge", o.Merge})
		}
		if unused != "" {
			return optionErr(unused+"; give a merge rule only with method "+string(SLM),
				OptionValue{"Merge", o.Merge}, OptionValue{"Method", method})
		}
	}
	return nil
}

// checkWidth checks the parameter target's options: ParamsRatio in (0, 1)
// excludes the depth targets and any method but the default (it chooses the
// depth itself, by the auto method); WidthRatio, WidthScore, WidthAlloc and
// WidthHeads need it. Whether WidthHeads fits the model (whole KV groups,
// fewer than its heads, within the width share) is known only from the
// model: measureMix says.
func (o Options) checkWidth() error {
	if o.ParamsRatio == 0 {
		for _, x := range []struct {
			set bool
			v   OptionValue
		}{
			{o.WidthRatio != nil, OptionValue{"WidthRatio", ptrValue(o.WidthRatio)}},
			{o.WidthScore != "", OptionValue{"WidthScore", o.WidthScore}},
			{o.WidthAlloc != "", OptionValue{"WidthAlloc", o.WidthAlloc}},
			{o.WidthHeads != nil, OptionValue{"WidthHeads", intValue(o.WidthHeads)}},
		} {
			if x.set {
				return optionErr("only a parameter target removes width; give a share of the parameters too", x.v, OptionValue{"ParamsRatio", 0.0})
			}
		}
		return nil
	}
	if !(o.ParamsRatio > 0 && o.ParamsRatio < 1) {
		return optionErr("want a share of the decoder layers' parameters in (0, 1)", OptionValue{"ParamsRatio", o.ParamsRatio})
	}
	for _, x := range []struct {
		set bool
		v   OptionValue
	}{
		{o.Threshold != 0, OptionValue{"Threshold", o.Threshold}},
		{o.Layers != 0, OptionValue{"Layers", o.Layers}},
		{o.PruneRatio != 0, OptionValue{"PruneRatio", o.PruneRatio}},
	} {
		if x.set {
			return optionErr("a parameter target chooses the depth itself; give one or the other", OptionValue{"ParamsRatio", o.ParamsRatio}, x.v)
		}
	}
	if o.Method != "" && o.Method != Auto {
		return optionErr("a parameter target chooses its layers by the default method", OptionValue{"ParamsRatio", o.ParamsRatio}, OptionValue{"Method", o.Method})
	}
	if o.WidthRatio != nil && !(*o.WidthRatio >= 0 && *o.WidthRatio <= 1) {
		return optionErr("want the share of the removed parameters taken from width, in [0, 1]", OptionValue{"WidthRatio", *o.WidthRatio})
	}
	if o.WidthScore != "" && !slices.Contains(WidthScores, o.WidthScore) {
		return optionErr(fmt.Sprintf("want one of %v", WidthScores), OptionValue{"WidthScore", o.WidthScore})
	}
	if o.WidthAlloc != "" && !slices.Contains(WidthAllocs, o.WidthAlloc) {
		return optionErr(fmt.Sprintf("want one of %v", WidthAllocs), OptionValue{"WidthAlloc", o.WidthAlloc})
	}
	if o.WidthHeads != nil && *o.WidthHeads < 0 {
		return optionErr("want the number of query heads every layer loses, 0 or more", OptionValue{"WidthHeads", *o.WidthHeads})
	}
	if o.WidthHeads != nil && *o.WidthHeads > 0 && o.WidthRatio != nil && *o.WidthRatio == 0 {
		return optionErr("heads are width: a width share of 0 removes none", OptionValue{"WidthHeads", *o.WidthHeads}, OptionValue{"WidthRatio", 0.0})
	}
	return nil
}

func intValue(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func ptrValue(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// widthScores are the channel scores a parameter target tries: the one set,
// or all.
func (o Options) widthScores() []WidthScore {
	if o.WidthScore == "" {
		return WidthScores
	}
	return []WidthScore{o.WidthScore}
}

// widthAllocs are the channel allocations a parameter target tries: the one
// set, or all.
func (o Options) widthAllocs() []WidthAlloc {
	if o.WidthAlloc == "" {
		return WidthAllocs
	}
	return []WidthAlloc{o.WidthAlloc}
}

// method is the method o asks for: Auto when none is set.
func (o Options) method() Method {
	if o.Method == "" {
		return Auto
	}
	return o.Method
}

// merge is the merge rule of method SLM: Paper when none is set.
func (o Options) merge() rewrite.Rule {
	if o.Merge == "" {
		return rewrite.Paper
	}
	return o.Merge
}

// checkRows checks that a run has calibration rows.
func checkRows(rows [][]int64) error {
	if len(rows) == 0 {
		return optionErr("no calibration tokens", OptionValue{"Calibration", "(none)"})
	}
	return nil
}

// Check reports the first mistake in o as an *OptionError, before any work:
// an unknown kernel, an RBF factor that is negative or given with a kernel
// that has none, a negative batch or thread count, thresholds outside
// (0, 1] or an empty (non-nil) list of them. The calibration rows are
// checked by Analyze.
func (o AnalyzeOptions) Check() error {
	switch o.Kernel {
	case "", KernelLinear, KernelRBF:
	default:
		return optionErr(fmt.Sprintf("want one of %v", Kernels), OptionValue{"Kernel", o.Kernel})
	}
	if !(o.RBFFactor >= 0) {
		return optionErr("want a positive multiple of the median distance (0 for 1)", OptionValue{"RBFFactor", o.RBFFactor})
	}
	if o.RBFFactor != 0 && o.Kernel != KernelRBF {
		kernel := o.Kernel
		if kernel == "" {
			kernel = KernelLinear
		}
		return optionErr("only the rbf kernel has a bandwidth", OptionValue{"RBFFactor", o.RBFFactor}, OptionValue{"Kernel", kernel})
	}
	if o.Batch < 0 {
		return optionErr("want a number of sequences, at least 1 (0 for the default)", OptionValue{"Batch", o.Batch})
	}
	if o.Runtime.Threads < 0 {
		return optionErr("want a number of goroutines, at least 1 (0 for all cores)", OptionValue{"Runtime.Threads", o.Runtime.Threads})
	}
	if o.Thresholds != nil && len(o.Thresholds) == 0 {
		return optionErr("give at least one threshold (nil for the defaults)", OptionValue{"Thresholds", "[]"})
	}
	for _, th := range o.Thresholds {
		if !(th > 0 && th <= 1) {
			return optionErr("want similarities in (0, 1]", OptionValue{"Thresholds", th})
		}
	}
	return nil
}

// checkRecover checks the options of recovery.
func (o Options) checkRecover() error {
	if o.RecoverSteps < 0 {
		return optionErr("want a number of steps, at least 1 (0 for the default)", OptionValue{"RecoverSteps", o.RecoverSteps})
	}
	if o.RecoverBudget < 0 {
		return optionErr("want a positive duration (0 for none)", OptionValue{"RecoverBudget", o.RecoverBudget})
	}
	if !(o.RecoverLR >= 0) || math.IsInf(o.RecoverLR, 1) {
		return optionErr("want a positive learning rate (0 for the default)", OptionValue{"RecoverLR", o.RecoverLR})
	}
	if !o.Recover {
		for _, v := range []OptionValue{{"RecoverSteps", o.RecoverSteps}, {"RecoverBudget", o.RecoverBudget}, {"RecoverLR", o.RecoverLR}} {
			if v.Value != 0 && v.Value != time.Duration(0) && v.Value != 0.0 {
				return optionErr("bounds recovery, which is off", v, OptionValue{"Recover", false})
			}
		}
	}
	return nil
}
