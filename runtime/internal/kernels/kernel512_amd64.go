//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// kern512Rows2 computes the 6×32 tile C[0:6, 0:32] (+)= A·[B0 B1] with
// AVX-512: A read in place from six rows lda apart, B0 and B1 two packed
// 16-column panels bs floats apart; acc = 0 overwrites C.
//
//go:noescape
func kern512Rows2(kc int, a *float32, lda int, b *float32, bs int, c *float32, ldc int, acc int)

// kern512Packed2 is kern512Rows2 with A packed (six floats per k step).
//
//go:noescape
func kern512Packed2(kc int, a, b *float32, bs int, c *float32, ldc int, acc int)

// hasAVX512F reports whether the CPU and OS support AVX-512 Foundation
// (x/sys/cpu checks that the OS saves the opmask and all 32 ZMM registers).
func hasAVX512F() bool { return hasAVX2FMA() && cpu.X86.HasAVX512F }

func microKernelRows2AVX512(kc int, a []float32, lda int, b []float32, bs int, c []float32, ldc int, acc bool) {
	if kc <= 0 {
		return
	}
	_ = a[(gemmMR-1)*lda+kc-1]
	_ = b[bs+kc*gemmNR-1]
	_ = c[(gemmMR-1)*ldc+2*gemmNR-1]
	flag := 0
	if acc {
		flag = 1
	}
	kern512Rows2(kc, &a[0], lda, &b[0], bs, &c[0], ldc, flag)
}

func microKernel2AVX512(kc int, a, b []float32, bs int, c []float32, ldc int, acc bool) {
	if kc <= 0 {
		return
	}
	_ = a[kc*gemmMR-1]
	_ = b[bs+kc*gemmNR-1]
	_ = c[(gemmMR-1)*ldc+2*gemmNR-1]
	flag := 0
	if acc {
		flag = 1
	}
	kern512Packed2(kc, &a[0], &b[0], bs, &c[0], ldc, flag)
}

// useAVX512 records whether the AVX-512 kernels are in use.
var useAVX512 = useAsm && hasAVX512F()

func init() {
	if useAVX512 {
		microKernel2 = microKernel2AVX512
		microKernelRows2 = microKernelRows2AVX512
	}
}
