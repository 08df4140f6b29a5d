//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// widenF16AVX widens n float16 values (n a multiple of 8) with F16C.
//
//go:noescape
func widenF16AVX(dst *float32, src *uint16, n int)

// widenBF16AVX widens n bfloat16 values (n a multiple of 8) with AVX2.
//
//go:noescape
func widenBF16AVX(dst *float32, src *uint16, n int)

// packHalfRowsAVX widens kc rows of 16 values, lds elements apart in src,
// into dst (16 floats a row); bf16 = 1 for bfloat16.
//
//go:noescape
func packHalfRowsAVX(dst *float32, src *uint16, kc, lds, bf16 int)

func widenF16Asm(dst []float32, src []uint16) {
	n := len(src)
	dst = dst[:n]
	v := n &^ 7
	if v > 0 {
		widenF16AVX(&dst[0], &src[0], v)
	}
	widenF16Go(dst[v:], src[v:])
}

func widenBF16Asm(dst []float32, src []uint16) {
	n := len(src)
	dst = dst[:n]
	v := n &^ 7
	if v > 0 {
		widenBF16AVX(&dst[0], &src[0], v)
	}
	widenBF16Go(dst[v:], src[v:])
}

func packHalfRowsAsm(dst []float32, src []uint16, kc, lds int, bf16 bool) {
	if kc <= 0 {
		return
	}
	_ = dst[kc*gemmNR-1]
	_ = src[(kc-1)*lds+gemmNR-1]
	flag := 0
	if bf16 {
		flag = 1
	}
	packHalfRowsAVX(&dst[0], &src[0], kc, lds, flag)
}

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasF16C {
		widenF16 = widenF16Asm
		widenBF16 = widenBF16Asm
		packHalfRows = packHalfRowsAsm
	}
}
