//go:build amd64 && !purego

#include "textflag.h"

// AVX-512 microkernels: a 6x32 tile of C from two adjacent 16-column panels
// of packed B (the second one bs bytes after the first), one zmm register per
// row and panel (12 accumulators). Each accumulator sums its k products in
// order with FMA, starting from zero, and is then added to C (or stored): the
// same operations, in the same order, as kernAVX2 on each panel, so results
// are bitwise identical to the AVX2 kernel's.

// One k step reading A straight from six rows: rows 0-2 at SI, SI+R9,
// SI+2·R9, rows 3-5 at R10, R10+R9, R10+2·R9 (R9 = lda in bytes); B rows at
// DI and DI+R12.
#define STEP512R(aoff, boff) \
	VMOVUPS boff(DI), Z0 \
	VMOVUPS boff(DI)(R12*1), Z1 \
	VBROADCASTSS aoff(SI), Z16 \
	VBROADCASTSS aoff(SI)(R9*1), Z17 \
	VBROADCASTSS aoff(SI)(R9*2), Z18 \
	VBROADCASTSS aoff(R10), Z19 \
	VBROADCASTSS aoff(R10)(R9*1), Z20 \
	VBROADCASTSS aoff(R10)(R9*2), Z21 \
	VFMADD231PS Z0, Z16, Z4 \
	VFMADD231PS Z1, Z16, Z5 \
	VFMADD231PS Z0, Z17, Z6 \
	VFMADD231PS Z1, Z17, Z7 \
	VFMADD231PS Z0, Z18, Z8 \
	VFMADD231PS Z1, Z18, Z9 \
	VFMADD231PS Z0, Z19, Z10 \
	VFMADD231PS Z1, Z19, Z11 \
	VFMADD231PS Z0, Z20, Z12 \
	VFMADD231PS Z1, Z20, Z13 \
	VFMADD231PS Z0, Z21, Z14 \
	VFMADD231PS Z1, Z21, Z15

// One k step with A packed six floats per k step at SI.
#define STEP512P(aoff, boff) \
	VMOVUPS boff(DI), Z0 \
	VMOVUPS boff(DI)(R12*1), Z1 \
	VBROADCASTSS aoff(SI), Z16 \
	VBROADCASTSS aoff+4(SI), Z17 \
	VBROADCASTSS aoff+8(SI), Z18 \
	VBROADCASTSS aoff+12(SI), Z19 \
	VBROADCASTSS aoff+16(SI), Z20 \
	VBROADCASTSS aoff+20(SI), Z21 \
	VFMADD231PS Z0, Z16, Z4 \
	VFMADD231PS Z1, Z16, Z5 \
	VFMADD231PS Z0, Z17, Z6 \
	VFMADD231PS Z1, Z17, Z7 \
	VFMADD231PS Z0, Z18, Z8 \
	VFMADD231PS Z1, Z18, Z9 \
	VFMADD231PS Z0, Z19, Z10 \
	VFMADD231PS Z1, Z19, Z11 \
	VFMADD231PS Z0, Z20, Z12 \
	VFMADD231PS Z1, Z20, Z13 \
	VFMADD231PS Z0, Z21, Z14 \
	VFMADD231PS Z1, Z21, Z15

#define ZERO12 \
	VPXORD Z4, Z4, Z4 \
	VPXORD Z5, Z5, Z5 \
	VPXORD Z6, Z6, Z6 \
	VPXORD Z7, Z7, Z7 \
	VPXORD Z8, Z8, Z8 \
	VPXORD Z9, Z9, Z9 \
	VPXORD Z10, Z10, Z10 \
	VPXORD Z11, Z11, Z11 \
	VPXORD Z12, Z12, Z12 \
	VPXORD Z13, Z13, Z13 \
	VPXORD Z14, Z14, Z14 \
	VPXORD Z15, Z15, Z15

// C row at DX: panel 0's 16 floats at 0(DX), panel 1's at 64(DX).
#define ADDROW(z0, z1) \
	VADDPS (DX), z0, z0 \
	VMOVUPS z0, (DX) \
	VADDPS 64(DX), z1, z1 \
	VMOVUPS z1, 64(DX) \
	ADDQ R8, DX

#define PUTROW(z0, z1) \
	VMOVUPS z0, (DX) \
	VMOVUPS z1, 64(DX) \
	ADDQ R8, DX

#define STORE12(accoff) \
	MOVQ accoff(FP), AX \
	TESTQ AX, AX \
	JZ overwrite \
	ADDROW(Z4, Z5) \
	ADDROW(Z6, Z7) \
	ADDROW(Z8, Z9) \
	ADDROW(Z10, Z11) \
	ADDROW(Z12, Z13) \
	ADDROW(Z14, Z15) \
	VZEROUPPER \
	RET \
overwrite: \
	PUTROW(Z4, Z5) \
	PUTROW(Z6, Z7) \
	PUTROW(Z8, Z9) \
	PUTROW(Z10, Z11) \
	PUTROW(Z12, Z13) \
	PUTROW(Z14, Z15) \
	VZEROUPPER \
	RET

// func kern512Rows2(kc int, a *float32, lda int, b *float32, bs int, c *float32, ldc int, acc int)
// C[0:6, 0:32] (+)= A·[B0 B1], A read in place from six rows lda floats
// apart, B0 and B1 packed 16 floats per k step, B1 = B0 + bs floats.
TEXT ·kern512Rows2(SB), NOSPLIT, $0-64
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R9
	SHLQ $2, R9
	LEAQ (SI)(R9*2), R10
	ADDQ R9, R10
	MOVQ b+24(FP), DI
	MOVQ bs+32(FP), R12
	SHLQ $2, R12
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R8
	SHLQ $2, R8
	ZERO12

	MOVQ CX, R11
	SHRQ $2, R11
	JZ rtail

rloop4:
	STEP512R(0, 0)
	STEP512R(4, 64)
	STEP512R(8, 128)
	STEP512R(12, 192)
	ADDQ $16, SI
	ADDQ $16, R10
	ADDQ $256, DI
	DECQ R11
	JNZ rloop4

rtail:
	ANDQ $3, CX
	JZ store

rloop1:
	STEP512R(0, 0)
	ADDQ $4, SI
	ADDQ $4, R10
	ADDQ $64, DI
	DECQ CX
	JNZ rloop1

store:
	STORE12(acc+56)

// func kern512Packed2(kc int, a, b *float32, bs int, c *float32, ldc int, acc int)
// As kern512Rows2 with A packed six floats per k step.
TEXT ·kern512Packed2(SB), NOSPLIT, $0-56
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ bs+24(FP), R12
	SHLQ $2, R12
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $2, R8
	ZERO12

	MOVQ CX, R11
	SHRQ $2, R11
	JZ ptail

ploop4:
	STEP512P(0, 0)
	STEP512P(24, 64)
	STEP512P(48, 128)
	STEP512P(72, 192)
	ADDQ $96, SI
	ADDQ $256, DI
	DECQ R11
	JNZ ploop4

ptail:
	ANDQ $3, CX
	JZ store

ploop1:
	STEP512P(0, 0)
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNZ ploop1

store:
	STORE12(acc+48)


