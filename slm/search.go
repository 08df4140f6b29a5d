package slm

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Memo wraps an Evaluator so that each distinct candidate is scored once.
// Scores depend only on the committed windows and the candidate, so runs of
// the loop at different thresholds share most of their work.
type Memo struct {
	Inner Evaluator
	mu    sync.Mutex
	cache map[string]float64
	// Calls counts the evaluations that reached Inner.
	Calls int
}

// Similarity implements Evaluator.
func (m *Memo) Similarity(ctx context.Context, committed []Window, c Window) (float64, error) {
	k := fmt.Sprint(SortWindows(committed), c)
	m.mu.Lock()
	if m.cache == nil {
		m.cache = map[string]float64{}
	}
	if s, ok := m.cache[k]; ok {
		m.mu.Unlock()
		return s, nil
	}
	m.mu.Unlock()
	s, err := m.Inner.Similarity(ctx, committed, c)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	m.cache[k] = s
	m.Calls++
	m.mu.Unlock()
	return s, nil
}

// DepthSearch is the outcome of searching a threshold for a target depth.
type DepthSearch struct {
	Threshold float64 // the threshold whose result was kept
	Result    *Result
	Layers    int // layers after merging; equals the target unless Exact is false
	Exact     bool
	// Tried lists every threshold run, highest first, with the depth it gave.
	Tried []ThresholdTrial
}

// DepthOptions configure SearchDepth.
type DepthOptions struct {
	// AtEnd is what each run of the loop does with a window still growing
	// when it ends.
	AtEnd Pending
	// Trial, when set, hears each run of the loop once it has ended (for
	// progress reports: a deep model's search runs the loop many times).
	Trial func(ThresholdTrial)
}

// ThresholdTrial is one run of the loop during a depth search.
type ThresholdTrial struct {
	Threshold float64 `json:"threshold"`
	Layers    int     `json:"layers"`
}

// breakEps places a trial threshold just below an observed score, so that the
// candidate with that score passes.
const breakEps = 1e-7

// SearchDepth finds the highest threshold at which the loop leaves exactly
// target layers. The loop's decisions change only when the threshold crosses
// a score it has seen, so the search lowers the threshold from 1 through the
// observed scores, one at a time; ev should be a *Memo so repeated candidates
// cost nothing. The layer count is not monotone in the threshold (a lower
// threshold can grow one long window where a higher one made two), so the
// search goes on past the target until the loop merges everything it can. When
// no threshold gives exactly target layers, the nearest depth above the target
// is kept and Exact is false.
func SearchDepth(ctx context.Context, numLayers, target int, ev Evaluator, opts DepthOptions) (*DepthSearch, error) {
	if target < 1 || target > numLayers {
		return nil, fmt.Errorf("target depth %d out of range 1..%d", target, numLayers)
	}
	seen := map[float64]bool{}
	var best, fallback *DepthSearch
	out := &DepthSearch{}
	th := 1.0
	for iter := 0; iter < 10000; iter++ {
		res, err := Slide(ctx, numLayers, ev, Options{Threshold: th, AtEnd: opts.AtEnd})
		if err != nil {
			return nil, err
		}
		layers := LayersAfter(numLayers, res.Windows)
		trial := ThresholdTrial{th, layers}
		out.Tried = append(out.Tried, trial)
		if opts.Trial != nil {
			opts.Trial(trial)
		}
		cand := &DepthSearch{Threshold: th, Result: res, Layers: layers, Exact: layers == target}
		if layers == target && best == nil {
			best = cand
			break
		}
		if layers > target && (fallback == nil || layers < fallback.Layers) {
			fallback = cand
		}
		for _, s := range res.Trace {
			if !s.Cached {
				seen[s.Sim] = true
			}
		}
		// Next breakpoint: the highest observed score at or below the current
		// threshold that does not yet pass.
		var scores []float64
		for s := range seen {
			if s <= th && s > th-1 {
				scores = append(scores, s)
			}
		}
		sort.Sort(sort.Reverse(sort.Float64Slice(scores)))
		next := -1.0
		for _, s := range scores {
			if s-breakEps < th-breakEps/2 {
				next = s - breakEps
				break
			}
		}
		if next <= -1 {
			break
		}
		th = next
	}
	chosen := best
	if chosen == nil {
		chosen = fallback
	}
	if chosen == nil {
		return nil, fmt.Errorf("no threshold leaves %d of %d layers or more", target, numLayers)
	}
	chosen.Tried = out.Tried
	return chosen, nil
}
