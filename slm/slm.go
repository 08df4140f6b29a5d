// Package slm decides which consecutive decoder layers to merge: the Sliding
// Layer Merging loop of Ding et al. (2025), the baselines it is compared with,
// and the search for a threshold that reaches a requested depth.
//
// The package is pure policy: it never touches a model. An Evaluator scores a
// candidate (the model with some windows merged) and the loop decides from the
// scores, so the decisions can be tested by replaying recorded scores.
package slm

import (
	"context"
	"fmt"
	"sort"
)

// Window is a run of consecutive layers [Low..High] (original indices,
// inclusive) merged into one layer that takes the place of layer Low.
type Window struct {
	Low  int `json:"low"`
	High int `json:"high"`
}

func (w Window) String() string { return fmt.Sprintf("%d..%d", w.Low, w.High) }

// Size is the number of layers in the window.
func (w Window) Size() int { return w.High - w.Low + 1 }

// Evaluator scores candidate models for the sliding loop.
type Evaluator interface {
	// Similarity returns the merge criterion (higher is closer to the original
	// model) of the model in which every committed window and the candidate
	// window are merged. Committed windows all lie above the candidate.
	Similarity(ctx context.Context, committed []Window, candidate Window) (float64, error)
}

// Pending says what the loop does with a window still growing when it ends.
type Pending int

const (
	// CommitPending merges it, as the paper's algorithm does.
	CommitPending Pending = iota
	// DropPending forgets it, as the authors' released code does.
	DropPending
)

// Options configure the sliding loop.
type Options struct {
	// Threshold: a window is extended while the candidate's similarity is
	// strictly above it.
	Threshold float64
	// AtEnd is what happens to a pending window when the loop runs out of layers.
	AtEnd Pending
	// Step, when set, is called after each candidate (for progress reports).
	Step func(s Step)
	// ScoreUnchanged scores a candidate that merges nothing (the window that
	// restarts after a commit is a single layer) with the Evaluator, as a naive
	// implementation of the paper's loop does, instead of reusing the known
	// score of the current model. Decisions are the same either way.
	ScoreUnchanged bool
}

// Action names what the loop did after scoring a candidate.
type Action string

const (
	ActExtend Action = "extend" // similarity above threshold: grow the window downwards
	ActCommit Action = "commit" // similarity fell: merge the window as it was before this candidate
	ActSlide  Action = "slide"  // similarity fell and the window held one layer: move down by one
)

// Step is one scored candidate of the loop.
type Step struct {
	Window
	Sim    float64 `json:"sim"`
	Action Action  `json:"-"`
	// Committed is the window merged by a Commit step.
	Committed *Window `json:"-"`
	// Cached is set when the candidate equals the current model, whose score is
	// already known, so no evaluation was run.
	Cached bool `json:"cached,omitempty"`
}

// String renders the step as a trace line ("3..5 0.912345 extend"): Window's
// String would print only its layers.
func (s Step) String() string {
	return fmt.Sprintf("%s %.6f %s", s.Window, s.Sim, s.ActionText())
}

// ActionText renders the action as the reference traces do ("commit 5..6").
func (s Step) ActionText() string {
	if s.Action == ActCommit && s.Committed != nil {
		return fmt.Sprintf("commit %s", s.Committed)
	}
	return string(s.Action)
}

// Result is the outcome of the sliding loop.
type Result struct {
	Windows []Window // merged windows, ascending by Low
	Trace   []Step
	// Evaluations counts the calls to the Evaluator (cached steps excluded).
	Evaluations int
	// PendingAtEnd is the window still growing when the loop ended, if any,
	// and whether it was committed (CommitPending) or dropped.
	PendingAtEnd *Window
}

// Slide runs the sliding-window loop on a stack of numLayers layers.
//
// Windows grow top-down. The loop starts with high = numLayers-2 (the last layer
// is never merged) and low = high-1. Each candidate is the current model with
// layers low..high merged into low. While the candidate's similarity to the
// original model stays above the threshold the window extends (low decreases);
// when it falls, the window as it stood before this candidate (low+1..high) is
// committed if it holds two or more layers, and the next window starts at the
// layer that failed (high = low); otherwise the one-layer window slides down.
func Slide(ctx context.Context, numLayers int, ev Evaluator, opts Options) (*Result, error) {
	if numLayers < 3 {
		return &Result{}, nil
	}
	res := &Result{}
	var committed []Window
	currentSim := 1.0 // the unmerged model is identical to the original
	high := numLayers - 2
	low := high - 1
	for low >= 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		step := Step{Window: Window{low, high}}
		if low == high && !opts.ScoreUnchanged {
			// The candidate merges nothing: it is the current model.
			step.Sim, step.Cached = currentSim, true
		} else {
			sim, err := ev.Similarity(ctx, committed, Window{low, high})
			if err != nil {
				return nil, fmt.Errorf("candidate %d..%d: %w", low, high, err)
			}
			res.Evaluations++
			step.Sim = sim
		}
		switch {
		case step.Sim > opts.Threshold:
			step.Action = ActExtend
			low--
		case high > low+1:
			w := Window{low + 1, high}
			step.Action, step.Committed = ActCommit, &w
			committed = append(committed, w)
			currentSim = lastExtendSim(res.Trace, w)
			high = low
		default:
			step.Action = ActSlide
			high = low
			low--
		}
		res.Trace = append(res.Trace, step)
		if opts.Step != nil {
			opts.Step(step)
		}
	}
	if high > low+1 {
		w := Window{low + 1, high}
		res.PendingAtEnd = &w
		if opts.AtEnd == CommitPending {
			committed = append(committed, w)
		}
	}
	res.Windows = SortWindows(committed)
	return res, nil
}

// lastExtendSim is the score of the candidate that last extended window w: the
// similarity of the model once w is committed.
func lastExtendSim(trace []Step, w Window) float64 {
	for i := len(trace) - 1; i >= 0; i-- {
		s := trace[i]
		if s.Low == w.Low && s.High == w.High && s.Action == ActExtend {
			return s.Sim
		}
	}
	return 0
}

// SortWindows returns the windows ascending by Low.
func SortWindows(ws []Window) []Window {
	out := append([]Window(nil), ws...)
	sort.Slice(out, func(i, j int) bool { return out[i].Low < out[j].Low })
	return out
}

// LayersAfter is the number of layers left once windows are merged.
func LayersAfter(numLayers int, windows []Window) int {
	n := numLayers
	for _, w := range windows {
		n -= w.Size() - 1
	}
	return n
}

// RemovedLayers lists the original layers that windows remove (all but each
// window's lowest), ascending.
func RemovedLayers(windows []Window) []int {
	var out []int
	for _, w := range SortWindows(windows) {
		for i := w.Low + 1; i <= w.High; i++ {
			out = append(out, i)
		}
	}
	return out
}
