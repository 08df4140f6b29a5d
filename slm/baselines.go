package slm

import (
	"fmt"
	"sort"
)

// ShortGPT returns the layers that ShortGPT (Men et al., 2024) removes to leave
// target layers: those of lowest Block Influence, BI_i = 1 − mean cosine
// between layer i's input and output over calibration tokens. Ties go to the
// lower index. The result is ascending.
func ShortGPT(blockInfluence []float64, target int) ([]int, error) {
	n := len(blockInfluence)
	if target < 1 || target > n {
		return nil, fmt.Errorf("shortgpt: target depth %d out of range 1..%d", target, n)
	}
	order := RemovalOrder(blockInfluence)
	removed := append([]int(nil), order[:n-target]...)
	sort.Ints(removed)
	return removed, nil
}

// RemovalOrder lists the layers by ascending Block Influence (ties by index):
// the order in which ShortGPT removes them.
func RemovalOrder(blockInfluence []float64) []int {
	order := make([]int, len(blockInfluence))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return blockInfluence[order[a]] < blockInfluence[order[b]]
	})
	return order
}
