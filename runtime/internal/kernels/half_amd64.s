//go:build amd64 && !purego

#include "textflag.h"

// func packHalfRowsAVX(dst *float32, src *uint16, kc, lds, bf16 int)
// For p < kc: dst[16p : 16p+16] = widen(src[p·lds : p·lds+16]).
TEXT ·packHalfRowsAVX(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ kc+16(FP), CX
	MOVQ lds+24(FP), R8
	SHLQ $1, R8
	MOVQ bf16+32(FP), AX
	TESTQ CX, CX
	JZ   prdone
	TESTQ AX, AX
	JNZ  prbf
prf16:
	VCVTPH2PS (SI), Y0
	VCVTPH2PS 16(SI), Y1
	VMOVUPS   Y0, (DI)
	VMOVUPS   Y1, 32(DI)
	ADDQ R8, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  prf16
	JMP  prdone
prbf:
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VMOVUPS   Y0, (DI)
	VMOVUPS   Y1, 32(DI)
	ADDQ R8, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  prbf
prdone:
	VZEROUPPER
	RET
