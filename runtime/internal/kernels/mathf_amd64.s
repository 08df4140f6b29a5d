//go:build amd64 && !purego

#include "textflag.h"

// Constants, each replicated over 8 float32 lanes (32 bytes).
#define VEC(name, bits) \
	DATA name<>+0(SB)/4, $bits \
	DATA name<>+4(SB)/4, $bits \
	DATA name<>+8(SB)/4, $bits \
	DATA name<>+12(SB)/4, $bits \
	DATA name<>+16(SB)/4, $bits \
	DATA name<>+20(SB)/4, $bits \
	DATA name<>+24(SB)/4, $bits \
	DATA name<>+28(SB)/4, $bits \
	GLOBL name<>(SB), RODATA|NOPTR, $32

VEC(exphi, 0x42b0c0a5)   // 88.3762626647949
VEC(explo, 0xc2ad0000)   // -86.5: below it exp flushes to 0 (keeps 2^n normal)
VEC(log2e, 0x3fb8aa3b)   // 1.44269504088896341
VEC(ln2hi, 0x3f318000)   // 0.693359375
VEC(ln2lo, 0xb95e8083)   // -2.12194440e-4
VEC(expc0, 0x39506967)   // 1.9875691500e-4
VEC(expc1, 0x3ab743ce)   // 1.3981999507e-3
VEC(expc2, 0x3c088908)   // 8.3334519073e-3
VEC(expc3, 0x3d2aa9c1)   // 4.1665795894e-2
VEC(expc4, 0x3e2aaaaa)   // 1.6666665459e-1
VEC(expc5, 0x3f000000)   // 5.0000001201e-1
VEC(one, 0x3f800000)     // 1
VEC(signmask, 0x80000000)
VEC(absmask, 0x7fffffff)
VEC(mtwo, 0xc0000000)    // -2

// EXP sets Y0 = exp(Y0), using Y1-Y5.
#define EXP \
	VCMPPS $0x1d, explo<>(SB), Y0, Y4 \
	VMAXPS explo<>(SB), Y0, Y0 \
	VMINPS exphi<>(SB), Y0, Y0 \
	VMULPS log2e<>(SB), Y0, Y1 \
	VROUNDPS $0, Y1, Y1 \
	VMOVAPS Y0, Y2 \
	VFNMADD231PS ln2hi<>(SB), Y1, Y2 \
	VFNMADD231PS ln2lo<>(SB), Y1, Y2 \
	VMOVUPS expc0<>(SB), Y3 \
	VFMADD213PS expc1<>(SB), Y2, Y3 \
	VFMADD213PS expc2<>(SB), Y2, Y3 \
	VFMADD213PS expc3<>(SB), Y2, Y3 \
	VFMADD213PS expc4<>(SB), Y2, Y3 \
	VFMADD213PS expc5<>(SB), Y2, Y3 \
	VMULPS Y2, Y2, Y5 \
	VFMADD213PS Y2, Y5, Y3 \
	VADDPS one<>(SB), Y3, Y3 \
	VCVTPS2DQ Y1, Y1 \
	VPSLLD $23, Y1, Y1 \
	VPADDD Y1, Y3, Y0 \
	VANDPS Y4, Y0, Y0

// func expAVX2(dst, src *float32, n int) (special bool)  (n a multiple of 8)
// special reports inputs above the clamp or NaN, whose results the caller
// must recompute.
TEXT ·expAVX2(SB), NOSPLIT, $0-25
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VXORPS Y9, Y9, Y9
	SHRQ $3, CX
	JZ expdone
exploop:
	VMOVUPS (SI), Y0
	VCMPPS $6, exphi<>(SB), Y0, Y8
	VORPS Y8, Y9, Y9
	EXP
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ exploop
expdone:
	VMOVMSKPS Y9, AX
	TESTL AX, AX
	SETNE ret+24(FP)
	VZEROUPPER
	RET

// func expShiftSumAVX2(dst, src *float32, n int, m float32) float32
// dst[i] = exp(src[i]-m); returns the sum (n a multiple of 8).
TEXT ·expShiftSumAVX2(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS m+24(FP), Y7
	VXORPS Y6, Y6, Y6
	SHRQ $3, CX
	JZ essdone
essloop:
	VMOVUPS (SI), Y0
	VSUBPS Y7, Y0, Y0
	EXP
	VMOVUPS Y0, (DI)
	VADDPS Y0, Y6, Y6
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ essloop
essdone:
	VEXTRACTF128 $1, Y6, X1
	VADDPS X1, X6, X6
	VHADDPS X6, X6, X6
	VHADDPS X6, X6, X6
	MOVSS X6, ret+32(FP)
	VZEROUPPER
	RET

// func sigmoidAVX2(dst, src *float32, n int) (special bool)  (n a multiple of 8)
// dst[i] = 1/(1+exp(-src[i])); special reports NaN inputs.
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-25
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VMOVUPS one<>(SB), Y7
	VXORPS Y9, Y9, Y9
	SHRQ $3, CX
	JZ sigdone
sigloop:
	VMOVUPS (SI), Y0
	VCMPPS $3, Y0, Y0, Y8
	VORPS Y8, Y9, Y9
	VXORPS signmask<>(SB), Y0, Y0
	EXP
	VADDPS Y7, Y0, Y0
	VDIVPS Y0, Y7, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ sigloop
sigdone:
	VMOVMSKPS Y9, AX
	TESTL AX, AX
	SETNE ret+24(FP)
	VZEROUPPER
	RET

// func tanhAVX2(dst, src *float32, n int) (special bool)  (n a multiple of 8)
// tanh(x) = sign(x)·(1−t)/(1+t) with t = exp(−2|x|); special reports NaN
// inputs.
TEXT ·tanhAVX2(SB), NOSPLIT, $0-25
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VMOVUPS one<>(SB), Y7
	VXORPS Y9, Y9, Y9
	SHRQ $3, CX
	JZ tanhdone
tanhloop:
	VMOVUPS (SI), Y6
	VCMPPS $3, Y6, Y6, Y8
	VORPS Y8, Y9, Y9
	VANDPS absmask<>(SB), Y6, Y0
	VMULPS mtwo<>(SB), Y0, Y0
	EXP
	VSUBPS Y0, Y7, Y1
	VADDPS Y0, Y7, Y2
	VDIVPS Y2, Y1, Y1
	VANDPS signmask<>(SB), Y6, Y6
	VORPS Y6, Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ tanhloop
tanhdone:
	VMOVMSKPS Y9, AX
	TESTL AX, AX
	SETNE ret+24(FP)
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) (m float32, nan bool)  (n a multiple of 8, > 0)
TEXT ·maxAVX2(SB), NOSPLIT, $0-21
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y0
	VXORPS Y9, Y9, Y9
	SHRQ $3, CX
maxloop:
	VMOVUPS (SI), Y1
	VCMPPS $3, Y1, Y1, Y8
	VORPS Y8, Y9, Y9
	VMAXPS Y1, Y0, Y0
	ADDQ $32, SI
	DECQ CX
	JNZ maxloop
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	MOVSS X0, m+16(FP)
	VMOVMSKPS Y9, AX
	TESTL AX, AX
	SETNE nan+20(FP)
	VZEROUPPER
	RET

// func scaleMaskMaxAVX2(x, mask *float32, c float32, n int, div bool) (m float32, nan bool)
// x[i] = x[i]/c + mask[i] (div) or x[i]·c + mask[i], in place; returns the
// maximum of the new x and whether any is NaN (n a multiple of 8, > 0).
TEXT ·scaleMaskMaxAVX2(SB), NOSPLIT, $0-45
	MOVQ x+0(FP), DI
	MOVQ mask+8(FP), SI
	VBROADCASTSS c+16(FP), Y7
	MOVQ n+24(FP), CX
	MOVBLZX div+32(FP), AX
	VXORPS Y9, Y9, Y9
	VMOVUPS (DI), Y0
	TESTL AX, AX
	JZ smmulfirst
	VDIVPS Y7, Y0, Y0
	JMP smfirst
smmulfirst:
	VMULPS Y7, Y0, Y0
smfirst:
	VADDPS (SI), Y0, Y6 // running maximum, seeded with the first block
	SHRQ $3, CX
smloop:
	VMOVUPS (DI), Y0
	TESTL AX, AX
	JZ smmul
	VDIVPS Y7, Y0, Y0
	JMP smadd
smmul:
	VMULPS Y7, Y0, Y0
smadd:
	VADDPS (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	VCMPPS $3, Y0, Y0, Y8
	VORPS Y8, Y9, Y9
	VMAXPS Y0, Y6, Y6
	ADDQ $32, DI
	ADDQ $32, SI
	DECQ CX
	JNZ smloop
	VEXTRACTF128 $1, Y6, X1
	VMAXPS X1, X6, X6
	VPERMILPS $0x4e, X6, X1
	VMAXPS X1, X6, X6
	VPERMILPS $0xb1, X6, X1
	VMAXPS X1, X6, X6
	MOVSS X6, m+40(FP)
	VMOVMSKPS Y9, AX
	TESTL AX, AX
	SETNE nan+44(FP)
	VZEROUPPER
	RET
