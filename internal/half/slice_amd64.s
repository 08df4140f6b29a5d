//go:build amd64 && !purego

#include "textflag.h"

// func widenF16AVX(dst *float32, src *byte, n int)
// VCVTPH2PS widens 8 float16 values exactly, except that it quiets a
// signalling NaN (sets float32 bit 22) where ToFloat32 keeps the payload as
// it is; the integer compares find those lanes (|h| in (0x7c00, 0x7e00)) and
// clear the bit again.
TEXT ·widenF16AVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	MOVL $0x7fff, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15 // |h| mask
	MOVL $0x7c00, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14 // +Inf
	MOVL $0x7e00, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13 // smallest quiet NaN
	MOVL $0x00400000, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12 // float32 quiet bit
f16loop:
	VCVTPH2PS (SI), Y0
	VPMOVZXWD (SI), Y1
	VPAND     Y15, Y1, Y1
	VPCMPGTD  Y14, Y1, Y2 // |h| > 0x7c00: NaN
	VPCMPGTD  Y1, Y13, Y3 // |h| < 0x7e00: not quiet
	VPAND     Y2, Y3, Y2
	VPAND     Y12, Y2, Y2
	VPXOR     Y2, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  f16loop
	VZEROUPPER
	RET

// func widenBF16AVX(dst *float32, src *byte, n int)
// A bfloat16 is the top half of a float32: zero-extend and shift.
TEXT ·widenBF16AVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
bfloop:
	VPMOVZXWD (SI), Y0
	VPSLLD    $16, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  bfloop
	VZEROUPPER
	RET

// func narrowF16AVX(dst *byte, src *float32, n int)
// VCVTPS2PH with imm8 = 0 rounds to nearest even, whatever MXCSR says; it
// gives ±Inf on overflow, exact subnormals, and for NaN the quiet NaN with the
// top 10 payload bits, as FromFloat32 does (the tests check every case).
TEXT ·narrowF16AVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
nf16loop:
	VMOVUPS   (SI), Y0
	VCVTPS2PH $0, Y0, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	DECQ CX
	JNZ  nf16loop
	VZEROUPPER
	RET

// func narrowBF16AVX(dst *byte, src *float32, n int)
// BFloat16FromFloat32 in integer lanes, 16 values a turn: r = (x + 0x7fff +
// (x>>16 & 1)) >> 16, or (x>>16) | 0x40 where |x| > 0x7f800000 (NaN); then
// pack the 32-bit lanes to 16 bits (VPACKUSDW packs within 128-bit halves,
// so VPERMQ puts the quarters back in order).
TEXT ·narrowBF16AVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	MOVL $1, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15 // 1
	MOVL $0x7fff, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14 // rounding bias
	MOVL $0x7fffffff, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13 // |x| mask
	MOVL $0x7f800000, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12 // +Inf
	MOVL $0x40, AX
	VMOVD AX, X11
	VPBROADCASTD X11, Y11 // bfloat16 quiet bit
nbfloop:
	VMOVDQU   (SI), Y0
	VPSRLD    $16, Y0, Y1
	VPAND     Y15, Y1, Y2
	VPADDD    Y14, Y0, Y3
	VPADDD    Y2, Y3, Y3
	VPSRLD    $16, Y3, Y3 // rounded
	VPOR      Y11, Y1, Y1 // NaN result
	VPAND     Y13, Y0, Y0
	VPCMPGTD  Y12, Y0, Y0 // NaN lanes
	VPBLENDVB Y0, Y1, Y3, Y4
	VMOVDQU   32(SI), Y0
	VPSRLD    $16, Y0, Y1
	VPAND     Y15, Y1, Y2
	VPADDD    Y14, Y0, Y3
	VPADDD    Y2, Y3, Y3
	VPSRLD    $16, Y3, Y3
	VPOR      Y11, Y1, Y1
	VPAND     Y13, Y0, Y0
	VPCMPGTD  Y12, Y0, Y0
	VPBLENDVB Y0, Y1, Y3, Y5
	VPACKUSDW Y5, Y4, Y4
	VPERMQ    $0xd8, Y4, Y4
	VMOVDQU   Y4, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  nbfloop
	VZEROUPPER
	RET
