package rowmajor

import (
	"slices"
	"testing"
)

func TestTranspose(t *testing.T) {
	for _, c := range []struct {
		name       string
		w          []int
		rows, cols int
		want       []int
	}{
		{"empty", []int{}, 0, 0, []int{}},
		{"row", []int{1, 2, 3}, 1, 3, []int{1, 2, 3}},
		{"column", []int{1, 2, 3}, 3, 1, []int{1, 2, 3}},
		{"2x3", []int{1, 2, 3, 4, 5, 6}, 2, 3, []int{1, 4, 2, 5, 3, 6}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Transpose(c.w, c.rows, c.cols)
			if !slices.Equal(got, c.want) {
				t.Fatalf("Transpose(%v, %d, %d) = %v, want %v", c.w, c.rows, c.cols, got, c.want)
			}
			if back := Transpose(got, c.cols, c.rows); !slices.Equal(back, c.w) {
				t.Fatalf("transposing back gives %v, want %v", back, c.w)
			}
		})
	}
}
