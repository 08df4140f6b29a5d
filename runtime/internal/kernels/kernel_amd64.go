//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// kernAVX2 is microKernel in AVX2/FMA assembly: C[0:6, 0:16] (+)= Ap·Bp,
// with ldc in elements; acc = 0 overwrites C.
//
//go:noescape
func kernAVX2(kc int, a, b, c *float32, ldc int, acc int)

// kernAVX2Rows is kernAVX2 reading A in place from six rows lda apart.
//
//go:noescape
func kernAVX2Rows(kc int, a *float32, lda int, b, c *float32, ldc int, acc int)

// hasAVX2FMA reports whether the CPU and OS support AVX2 and FMA3 (x/sys/cpu
// checks that the OS saves the YMM state).
func hasAVX2FMA() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

func microKernelAVX2(kc int, a, b, c []float32, ldc int, acc bool) {
	if kc <= 0 {
		return
	}
	_ = a[kc*gemmMR-1]
	_ = b[kc*gemmNR-1]
	_ = c[(gemmMR-1)*ldc+gemmNR-1]
	flag := 0
	if acc {
		flag = 1
	}
	kernAVX2(kc, &a[0], &b[0], &c[0], ldc, flag)
}

func microKernelRowsAVX2(kc int, a []float32, lda int, b, c []float32, ldc int, acc bool) {
	if kc <= 0 {
		return
	}
	_ = a[(gemmMR-1)*lda+kc-1]
	_ = b[kc*gemmNR-1]
	_ = c[(gemmMR-1)*ldc+gemmNR-1]
	flag := 0
	if acc {
		flag = 1
	}
	kernAVX2Rows(kc, &a[0], lda, &b[0], &c[0], ldc, flag)
}

// useAsm records whether the assembly kernels are in use (AVX2 and FMA).
var useAsm = hasAVX2FMA()

func init() {
	if useAsm {
		microKernel = microKernelAVX2
		microKernelRows = microKernelRowsAVX2
	}
}

// packRowsAVX copies np ≤ 4 sixteen-float panels of kc rows of a row-major
// B (rows lds floats apart) into packed panels dps floats apart.
//
//go:noescape
func packRowsAVX(dst, src *float32, kc, np, lds, dps int)

func packRowsAsm(dst, src []float32, kc, np, lds, dps int) {
	if kc <= 0 || np <= 0 {
		return
	}
	_ = dst[(np-1)*dps+kc*gemmNR-1]
	_ = src[(kc-1)*lds+np*gemmNR-1]
	packRowsAVX(&dst[0], &src[0], kc, np, lds, dps)
}

func init() {
	if useAsm {
		packRows = packRowsAsm
		RopeRow = func(o, x, c, s []float32, h int) {
			_, _, _ = x[2*h-1], c[2*h-1], s[2*h-1]
			_ = o[2*h-1]
			ropeRowAVX2(&o[0], &x[0], &c[0], &s[0], h)
		}
	}
}

// ropeRowAVX2 is ropeRow for h a multiple of 8.
//
//go:noescape
func ropeRowAVX2(o, x, c, s *float32, h int)
