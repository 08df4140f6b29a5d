package prune

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/onnxslm/onnxslm/slm"
)

// screenSpans picks the windows the auto search measures. Every window of
// 2..maxW layers is a candidate; when there are more than budget of them (a
// deep model: L = 24 cut by 6 has 123), only budget are kept, chosen for free
// from the cached stream: per window size, the windows whose layers together
// turn the stream least (lowest span Block Influence, 1 − cos(h_low,
// h_high+1)), taken round-robin over the sizes so that every size keeps its
// best windows. If the kept windows cannot remove exactly k layers together,
// more are added in the same order until they can. The windows are returned
// by size, then by low layer (the order the search measures them in).
func screenSpans(L, k, maxW, budget int, influence func(lo, hi int) (float64, error)) (kept []slm.Window, total int, err error) {
	var all []slm.Window
	for size := 2; size <= maxW; size++ {
		for lo := 0; lo+size <= L; lo++ {
			all = append(all, slm.Window{Low: lo, High: lo + size - 1})
		}
	}
	if budget <= 0 || len(all) <= budget {
		return all, len(all), nil
	}
	type ranked struct {
		s  slm.Window
		bi float64
	}
	bySize := make([][]ranked, maxW+1)
	for _, s := range all {
		bi, err := influence(s.Low, s.High)
		if err != nil {
			return nil, 0, err
		}
		size := s.High - s.Low + 1
		bySize[size] = append(bySize[size], ranked{s, bi})
	}
	for _, list := range bySize {
		slices.SortStableFunc(list, func(a, b ranked) int { return cmp.Compare(a.bi, b.bi) })
	}
	// The round-robin order: every size's best window, then every size's
	// second best, and so on.
	var order []ranked
	for r := 0; len(order) < len(all); r++ {
		for size := 2; size <= maxW; size++ {
			if r < len(bySize[size]) {
				order = append(order, bySize[size][r])
			}
		}
	}
	feasible := func(n int) bool {
		segs := make([]slm.Segment, n)
		for i, w := range order[:n] {
			segs[i] = slm.Segment{Window: w.s, Removes: w.s.High - w.s.Low, Cost: w.bi, Choice: i}
		}
		_, err := slm.BestCombinations(L, k, segs, 1)
		return err == nil
	}
	n := budget
	for n < len(order) && !feasible(n) {
		n++
	}
	for _, w := range order[:n] {
		kept = append(kept, w.s)
	}
	slices.SortFunc(kept, func(a, b slm.Window) int {
		if c := cmp.Compare(a.High-a.Low, b.High-b.Low); c != 0 {
			return c
		}
		return cmp.Compare(a.Low, b.Low)
	})
	if len(kept) == 0 {
		return nil, len(all), fmt.Errorf("no window of 2..%d layers in %d layers", maxW, L)
	}
	return kept, len(all), nil
}
