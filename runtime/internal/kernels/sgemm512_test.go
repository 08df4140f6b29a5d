package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSgemmWideKernelBitwise checks that the two-panel (AVX-512) kernels give
// bitwise the same C as the one-panel kernels, for every shape class: full
// and ragged tiles, packed and in-place A, one and two threads, K over
// several blocks.
func TestSgemmWideKernelBitwise(t *testing.T) {
	if microKernel2 == nil && microKernelRows2 == nil {
		t.Skip("no two-panel kernel on this CPU")
	}
	saved2, savedR2 := microKernel2, microKernelRows2
	defer func() { microKernel2, microKernelRows2 = saved2, savedR2 }()
	r := rand.New(rand.NewPCG(3, 4))
	sizes := [][3]int{{6, 32, 1}, {6, 32, 5}, {12, 64, 300}, {13, 48, 257}, {97, 130, 64}, {200, 40, 513}, {7, 2100, 9}, {128, 128, 32}, {96, 33, 600}, {20, 112, 70}}
	for _, sz := range sizes {
		m, n, k := sz[0], sz[1], sz[2]
		for _, ta := range []bool{false, true} {
			for _, alpha := range []float32{1, 0.5} {
				for _, threads := range []int{1, 2} {
					t.Run(fmt.Sprintf("%dx%dx%d/ta=%v/alpha=%v/threads=%d", m, n, k, ta, alpha, threads), func(t *testing.T) {
						a := MatView{Data: randF32(r, m*k), RS: k, CS: 1}
						if ta {
							a.RS, a.CS = 1, m
						}
						b := MatView{Data: randF32(r, k*n), RS: n, CS: 1}
						c0 := randF32(r, m*n)
						got := append([]float32{}, c0...)
						want := append([]float32{}, c0...)
						microKernel2, microKernelRows2 = saved2, savedR2
						Sgemm(threads, m, n, k, alpha, a, b, 1, got, n)
						microKernel2, microKernelRows2 = nil, nil
						Sgemm(1, m, n, k, alpha, a, b, 1, want, n)
						for i := range got {
							if got[i] != want[i] {
								t.Fatalf("C[%d,%d] = %v with the wide kernel, %v without", i/n, i%n, got[i], want[i])
							}
						}
					})
				}
			}
		}
	}
}
