package slm

import (
	"fmt"
	"sort"
)

// Segment is one option for a run of consecutive layers [Low..High]
// (original indices, inclusive): replace it by fewer layers, removing Removes
// of them, at an estimated Cost (lower is better). Choice is the caller's tag
// (which merge rule, whether repaired, ...).
type Segment struct {
	Window
	Removes int
	Cost    float64
	Choice  int
}

// String renders the segment with what it removes, its cost and its choice
// (Window's String would print only its layers).
func (s Segment) String() string {
	return fmt.Sprintf("%s -%d (%.6g) #%d", s.Window, s.Removes, s.Cost, s.Choice)
}

// Combination is a set of disjoint segments (ascending by Low) and the sum of
// their costs.
type Combination struct {
	Segments []Segment
	Cost     float64
}

// Windows returns the combination's segments as windows.
func (c Combination) Windows() []Window {
	out := make([]Window, len(c.Segments))
	for i, s := range c.Segments {
		out[i] = s.Window
	}
	return out
}

func (c Combination) String() string {
	return fmt.Sprintf("%v (%.6g)", c.Segments, c.Cost)
}

// BestCombinations returns up to k combinations of disjoint segments that
// together remove exactly remove of numLayers layers, cheapest first, costs
// being additive. It is a dynamic program over the layer sequence that keeps
// the k cheapest partial combinations for each (layers covered, layers
// removed) state: O(numLayers·remove·k·(segments per end layer)) steps.
// Ties are broken by the order of the segments in segs, then by fewer
// segments, so the result is deterministic.
func BestCombinations(numLayers, remove int, segs []Segment, k int) ([]Combination, error) {
	if numLayers < 1 || remove < 0 || remove >= numLayers {
		return nil, fmt.Errorf("plan: remove %d of %d layers", remove, numLayers)
	}
	if k < 1 {
		return nil, fmt.Errorf("plan: want at least one combination, got k = %d", k)
	}
	byEnd := make([][]int, numLayers)
	for i, s := range segs {
		if s.Low < 0 || s.High >= numLayers || s.Low > s.High {
			return nil, fmt.Errorf("plan: segment %d..%d outside 0..%d", s.Low, s.High, numLayers-1)
		}
		if s.Removes < 1 || s.Removes > s.High-s.Low+1 {
			return nil, fmt.Errorf("plan: segment %d..%d removes %d layers", s.Low, s.High, s.Removes)
		}
		byEnd[s.High] = append(byEnd[s.High], i)
	}
	type partial struct {
		cost float64
		segs []int // indices into segs, ascending by Low
	}
	less := func(a, b partial) bool {
		if a.cost != b.cost {
			return a.cost < b.cost
		}
		for i := 0; i < len(a.segs) && i < len(b.segs); i++ {
			if a.segs[i] != b.segs[i] {
				return a.segs[i] < b.segs[i]
			}
		}
		return len(a.segs) < len(b.segs)
	}
	// best[i][r]: the k cheapest ways to treat layers 0..i-1 removing r of them.
	best := make([][][]partial, numLayers+1)
	for i := range best {
		best[i] = make([][]partial, remove+1)
	}
	best[0][0] = []partial{{}}
	for i := 1; i <= numLayers; i++ {
		for r := 0; r <= remove; r++ {
			var cands []partial
			cands = append(cands, best[i-1][r]...) // layer i-1 kept as is
			for _, si := range byEnd[i-1] {
				s := segs[si]
				if s.Removes > r {
					continue
				}
				for _, p := range best[s.Low][r-s.Removes] {
					cands = append(cands, partial{p.cost + s.Cost, append(append([]int(nil), p.segs...), si)})
				}
			}
			sort.SliceStable(cands, func(a, b int) bool { return less(cands[a], cands[b]) })
			if len(cands) > k {
				cands = cands[:k]
			}
			best[i][r] = cands
		}
	}
	var out []Combination
	for _, p := range best[numLayers][remove] {
		c := Combination{Cost: p.cost}
		for _, si := range p.segs {
			c.Segments = append(c.Segments, segs[si])
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("plan: no combination of the %d segments removes exactly %d layers", len(segs), remove)
	}
	return out, nil
}
