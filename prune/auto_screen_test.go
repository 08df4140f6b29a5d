package prune

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/onnxslm/onnxslm/slm"
)

func TestScreenSpans(t *testing.T) {
	// influence: windows ending at an odd layer are cheap, and more so the
	// lower they start; a window containing layer 5 is the cheapest of its size.
	influence := func(lo, hi int) (float64, error) {
		v := float64(hi-lo) + float64(lo)/100
		if hi%2 == 1 {
			v -= 0.5
		}
		if lo <= 5 && 5 <= hi {
			v -= 1
		}
		return v, nil
	}
	tests := []struct {
		name            string
		L, k, maxW, bud int
		wantTotal       int
		want            []slm.Window // nil: only the count is checked
		wantLen         int
		mustContain     []slm.Window
	}{
		{name: "under budget keeps all", L: 8, k: 3, maxW: 4, bud: 20, wantTotal: 18, wantLen: 18},
		{name: "no budget keeps all", L: 8, k: 3, maxW: 4, bud: 0, wantTotal: 18, wantLen: 18},
		{name: "best of each size first", L: 8, k: 2, maxW: 3, bud: 2, wantTotal: 13,
			want: []slm.Window{{Low: 4, High: 5}, {Low: 3, High: 5}}},
		{name: "round robin over sizes", L: 8, k: 2, maxW: 3, bud: 4, wantTotal: 13,
			want: []slm.Window{{Low: 4, High: 5}, {Low: 5, High: 6}, {Low: 3, High: 5}, {Low: 5, High: 7}}},
		// k = 3 with windows of at most 2 layers: three disjoint pairs are needed,
		// so the screen adds windows past its budget until three fit.
		{name: "extends until feasible", L: 8, k: 3, maxW: 2, bud: 2, wantTotal: 7, wantLen: 4,
			mustContain: []slm.Window{{Low: 0, High: 1}, {Low: 4, High: 5}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, total, err := screenSpans(tc.L, tc.k, tc.maxW, tc.bud, influence)
			if err != nil {
				t.Fatal(err)
			}
			if total != tc.wantTotal {
				t.Errorf("total = %d, want %d", total, tc.wantTotal)
			}
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
			if tc.wantLen > 0 && len(got) != tc.wantLen {
				t.Errorf("kept %d windows %v, want %d", len(got), got, tc.wantLen)
			}
			for _, s := range tc.mustContain {
				if !slices.Contains(got, s) {
					t.Errorf("kept %v, missing %v", got, s)
				}
			}
			for i := 1; i < len(got); i++ { // by size, then by low layer
				a, b := got[i-1], got[i]
				if a.High-a.Low > b.High-b.Low || (a.High-a.Low == b.High-b.Low && a.Low >= b.Low) {
					t.Errorf("kept windows out of order: %v before %v", a, b)
				}
			}
		})
	}
}

func TestScreenSpansInfluenceError(t *testing.T) {
	boom := errors.New("boom")
	_, _, err := screenSpans(8, 2, 3, 2, func(lo, hi int) (float64, error) { return 0, fmt.Errorf("span %d..%d: %w", lo, hi, boom) })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the influence error", err)
	}
}
