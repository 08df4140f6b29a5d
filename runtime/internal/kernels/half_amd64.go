//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// packHalfRowsAVX widens kc rows of 16 values, lds elements apart in src,
// into dst (16 floats a row); bf16 = 1 for bfloat16. Contiguous widening
// lives in internal/half; this strided loop stays here, as it packs a whole
// panel in one call where half.WidenBits would be a call per 16 values. It
// lets VCVTPH2PS quiet a signalling NaN, which no product can tell apart.
//
//go:noescape
func packHalfRowsAVX(dst *float32, src *uint16, kc, lds, bf16 int)

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
		packHalfRows = packHalfRowsAsm
	}
}
