package graph_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/onnxslm/onnxslm/graph"
)

func TestSortIndices(t *testing.T) {
	for _, c := range []struct {
		name  string
		next  [][]int // next[i]: the items after i
		want  []int
		stuck int // items in a cycle (0: none)
	}{
		{"sorted stays", [][]int{{1}, {2}, nil}, []int{0, 1, 2}, 0},
		{"reversed", [][]int{nil, {0}, {1}}, []int{2, 1, 0}, 0},
		{"lowest ready first", [][]int{nil, nil, {0, 1}, nil}, []int{2, 0, 1, 3}, 0},
		{"repeats ignored", [][]int{{1, 1, 1}, nil}, []int{0, 1}, 0},
		{"cycle of one", [][]int{{0}, nil}, []int{1}, 1},
		{"cycle behind", [][]int{{1}, {0, 2}, nil, nil}, []int{3}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := graph.SortIndices(len(c.next), func(i int) []int { return c.next[i] }, nil,
				func(i int) string { return fmt.Sprint("n", i) })
			if !slices.Equal(got, c.want) {
				t.Errorf("order %v, want %v", got, c.want)
			}
			var ce *graph.CycleError
			if c.stuck == 0 && err != nil {
				t.Errorf("error %v, want none", err)
			}
			if c.stuck > 0 && (!errors.As(err, &ce) || ce.N != c.stuck) {
				t.Errorf("error %v, want a CycleError naming %d items", err, c.stuck)
			}
		})
	}
}
