package slm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
)

// bruteForce enumerates every set of disjoint segments removing exactly
// remove layers and returns their costs, ascending.
func bruteForce(segs []Segment, remove int) []float64 {
	var costs []float64
	var rec func(from, removed int, cost float64, end int)
	rec = func(from, removed int, cost float64, end int) {
		if removed == remove {
			costs = append(costs, cost)
		}
		for i := from; i < len(segs); i++ {
			s := segs[i]
			if s.Low > end && removed+s.Removes <= remove {
				rec(i+1, removed+s.Removes, cost+s.Cost, s.High)
			}
		}
	}
	sorted := append([]Segment(nil), segs...)
	sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].Low < sorted[b].Low })
	segs = sorted
	rec(0, 0, 0, -1)
	sort.Float64s(costs)
	return costs
}

// TestBestCombinationsScripted: on a small scripted cost table the program
// finds the optimum, and the runners-up in order.
func TestBestCombinationsScripted(t *testing.T) {
	segs := []Segment{
		{Window: Window{Low: 1, High: 2}, Removes: 1, Cost: 0.30, Choice: 0},
		{Window: Window{Low: 1, High: 2}, Removes: 1, Cost: 0.20, Choice: 1}, // a better rule for the same window
		{Window: Window{Low: 2, High: 3}, Removes: 1, Cost: 0.10},
		{Window: Window{Low: 3, High: 4}, Removes: 1, Cost: 0.15},
		{Window: Window{Low: 4, High: 5}, Removes: 1, Cost: 0.50},
		{Window: Window{Low: 2, High: 4}, Removes: 2, Cost: 0.40}, // one window of three
		{Window: Window{Low: 5, High: 5}, Removes: 1, Cost: 0.05}, // remove layer 5 outright
	}
	tests := []struct {
		remove   int
		want     [][2]int // windows of the optimum
		wantCost float64
	}{
		{1, [][2]int{{5, 5}}, 0.05},
		{2, [][2]int{{2, 3}, {5, 5}}, 0.15},
		// 2..3 and 3..4 overlap, so three removals need 1..2 (rule 1) + 3..4 + 5 (0.40),
		// beating 2..4 + 5 (0.45) and 1..2 + 2..3 (overlap, not allowed).
		{3, [][2]int{{1, 2}, {3, 4}, {5, 5}}, 0.40},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("remove ", tc.remove), func(t *testing.T) {
			got, err := BestCombinations(7, tc.remove, segs, 50)
			if err != nil {
				t.Fatal(err)
			}
			var ws [][2]int
			for _, w := range got[0].Windows() {
				ws = append(ws, [2]int{w.Low, w.High})
			}
			if !reflect.DeepEqual(ws, tc.want) || math.Abs(got[0].Cost-tc.wantCost) > 1e-12 {
				t.Errorf("optimum: got %v, want %v (cost %.2f)", got[0], tc.want, tc.wantCost)
			}
			if tc.remove == 3 && got[0].Segments[0].Choice != 1 {
				t.Errorf("optimum uses choice %d for window 1..2, want the cheaper choice 1", got[0].Segments[0].Choice)
			}
			all := bruteForce(segs, tc.remove)
			if len(got) != len(all) {
				t.Fatalf("got %d combinations, want all %d", len(got), len(all))
			}
			for i := range got {
				if math.Abs(got[i].Cost-all[i]) > 1e-12 {
					t.Errorf("combination %d: got cost %.4f, want %.4f", i, got[i].Cost, all[i])
				}
			}
		})
	}
}

// TestBestCombinationsRandom checks the k best costs against brute force on
// random tables.
func TestBestCombinationsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for trial := 0; trial < 30; trial++ {
		L := 4 + r.IntN(6)
		var segs []Segment
		for lo := 0; lo < L; lo++ {
			for hi := lo; hi < L && hi-lo < 3; hi++ {
				for c := 0; c < 2; c++ {
					rm := hi - lo
					if rm == 0 {
						rm = 1
					}
					segs = append(segs, Segment{Window: Window{Low: lo, High: hi}, Removes: rm, Cost: r.Float64(), Choice: c})
				}
			}
		}
		remove := 1 + r.IntN(L/2)
		all := bruteForce(segs, remove)
		got, err := BestCombinations(L, remove, segs, 5)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < min(5, len(all)); i++ {
			if math.Abs(got[i].Cost-all[i]) > 1e-12 {
				t.Errorf("L=%d remove %d, combination %d: got %.6f, want %.6f", L, remove, i, got[i].Cost, all[i])
			}
			removed := 0
			end := -1
			for _, s := range got[i].Segments {
				if s.Low <= end {
					t.Errorf("combination %v: segments overlap", got[i])
				}
				end = s.High
				removed += s.Removes
			}
			if removed != remove {
				t.Errorf("combination %v removes %d layers, want %d", got[i], removed, remove)
			}
		}
	}
}

func TestBestCombinationsErrors(t *testing.T) {
	ok := []Segment{{Window: Window{Low: 0, High: 1}, Removes: 1}}
	for _, tc := range []struct {
		name      string
		L, remove int
		segs      []Segment
		k         int
	}{
		{"remove all", 2, 2, ok, 1},
		{"k zero", 2, 1, ok, 0},
		{"segment outside", 2, 1, []Segment{{Window: Window{Low: 1, High: 2}, Removes: 1}}, 1},
		{"removes too many", 3, 1, []Segment{{Window: Window{Low: 0, High: 1}, Removes: 3}}, 1},
		{"unreachable", 4, 2, ok, 1},
	} {
		if _, err := BestCombinations(tc.L, tc.remove, tc.segs, tc.k); err == nil {
			t.Errorf("%s: want an error", tc.name)
		}
	}
}
