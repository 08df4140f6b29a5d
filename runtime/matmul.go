package runtime

import (
	"errors"
	"fmt"

	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

func compileMatMul(c *compileCtx) (kernel, error) {
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		t, err := matmul(ec, in[0], in[1])
		return []*Tensor{t}, err
	}, c.attrs.only()
}

// matmul is numpy's matmul for float32 tensors.
func matmul(ec *execCtx, a, b *Tensor) (*Tensor, error) {
	return matmulView(ec, a, b, nil, nil, nil, 1)
}

// opView is a strided view of a float32 tensor, or of a 16-bit weight (half
// set): element idx is at data[Σ idx[i]*st[i]] (half: at half's bits, from
// its offset).
type opView struct {
	shape, st []int
	data      []float32
	half      *Tensor
}

// permuted views t as transpose(t, perm) without moving data (perm nil: t).
func permuted(t *Tensor, perm []int) opView {
	var st []int
	var half *Tensor
	if t.isHalf() {
		st, half = t.half().st, t
	} else {
		st = stridesOf(t.shape)
	}
	if perm == nil {
		return opView{shape: t.shape, st: st, data: t.Float32Data(), half: half}
	}
	v := opView{shape: make([]int, len(perm)), st: make([]int, len(perm)), data: t.Float32Data(), half: half}
	for i, p := range perm {
		v.shape[i], v.st[i] = t.shape[p], st[p]
	}
	return v
}

// sgemmView multiplies with B from a float32 or a 16-bit view (offB from its
// start); see kernels.Sgemm.
func sgemmView(threads, m, n, k int, alpha float32, a kernels.MatView, b opView, offB, rs, cs int, c []float32, ldc int) {
	if b.half != nil {
		hv := b.half.halfView(rs, cs)
		hv.Off += offB
		kernels.SgemmB(threads, m, n, k, alpha, a, hv, 0, c, ldc)
		return
	}
	kernels.Sgemm(threads, m, n, k, alpha, a, kernels.MatView{Data: b.data, Off: offB, RS: rs, CS: cs}, 0, c, ldc)
}

// matmulView computes alpha · transpose(a, aPerm) @ transpose(b, bPerm) with
// numpy matmul semantics, written as transpose(result, outPerm) (outPerm must
// keep the last axis last). nil perms mean no transpose. Transposes cost
// nothing here: the packing of the operands absorbs any strides.
func matmulView(ec *execCtx, a, b *Tensor, aPerm, bPerm, outPerm []int, alpha float32) (*Tensor, error) {
	if a.dtype != Float32 || b.dtype != Float32 && !b.isHalf() {
		return nil, fmt.Errorf("MatMul of %v and %v: only float32 is supported", a.dtype, b.dtype)
	}
	if a.Rank() == 0 || b.Rank() == 0 {
		return nil, errors.New("MatMul of a scalar")
	}
	A, B := permuted(a, aPerm), permuted(b, bPerm)
	vecA, vecB := len(A.shape) == 1, len(B.shape) == 1
	if vecA {
		A = opView{shape: []int{1, A.shape[0]}, st: []int{0, A.st[0]}, data: A.data}
	}
	if vecB {
		B = opView{shape: []int{B.shape[0], 1}, st: []int{B.st[0], 0}, data: B.data, half: B.half}
	}
	ra, rb := len(A.shape), len(B.shape)
	m, k := A.shape[ra-2], A.shape[ra-1]
	k2, n := B.shape[rb-2], B.shape[rb-1]
	if k != k2 {
		return nil, fmt.Errorf("MatMul of shapes %v and %v: inner dimensions %d and %d differ", A.shape, B.shape, k, k2)
	}
	batch, err := broadcastShape(A.shape[:ra-2], B.shape[:rb-2])
	if err != nil {
		return nil, fmt.Errorf("MatMul of shapes %v and %v: %w", A.shape, B.shape, err)
	}
	full := append(append([]int{}, batch...), m, n) // logical result
	r := len(full)
	var shape, cst []int
	switch {
	case outPerm != nil:
		if vecA || vecB || len(outPerm) != r || outPerm[r-1] != r-1 {
			return nil, fmt.Errorf("output permutation %v not supported for MatMul of shapes %v and %v", outPerm, A.shape, B.shape)
		}
		shape, cst = permutedOutput(full, outPerm)
	default:
		cst = stridesOf(full)
		shape = append([]int{}, batch...)
		if !vecA {
			shape = append(shape, m)
		}
		if !vecB {
			shape = append(shape, n)
		}
	}
	out := ec.newF32(shape)
	od := out.Float32Data()
	nb := numel(batch)
	if nb == 0 || m == 0 || n == 0 {
		return out, nil
	}
	ldc := cst[r-2]
	if cst[r-1] != 1 {
		return nil, errors.New("internal error: output columns not contiguous")
	}
	// Per-operand strides of the batch dims (0 where broadcast).
	bst := func(v opView) []int {
		nbd := len(v.shape) - 2
		return broadcastStrides(v.shape[:nbd], v.st, len(batch))
	}
	aSt, bSt, cSt := bst(A), bst(B), cst[:r-2]
	// One multiply over all rows when B is shared by every batch and the rows
	// of A and C continue each other through the batch dims.
	if rows(batch, aSt, A.st[ra-2], m) && rows(batch, cSt, ldc, m) && allZero(bSt) {
		sgemmView(ec.threads, nb*m, n, k, alpha, kernels.MatView{Data: A.data, RS: A.st[ra-2], CS: A.st[ra-1]},
			B, 0, B.st[rb-2], B.st[rb-1], od, ldc)
		return out, nil
	}
	threads := ec.threads
	inner := 1
	if nb < threads {
		inner, threads = threads, 1
	}
	parallelFor(threads, nb, m*n*k, func(lo, hi int) {
		idx := make([]int, len(batch))
		for i := lo; i < hi; i++ {
			rem := i
			offA, offB, offC := 0, 0, 0
			for d := len(batch) - 1; d >= 0; d-- {
				idx[d] = rem % batch[d]
				rem /= batch[d]
				offA += idx[d] * aSt[d]
				offB += idx[d] * bSt[d]
				offC += idx[d] * cSt[d]
			}
			sgemmView(inner, m, n, k, alpha, kernels.MatView{Data: A.data, Off: offA, RS: A.st[ra-2], CS: A.st[ra-1]},
				B, offB, B.st[rb-2], B.st[rb-1], od[offC:], ldc)
		}
	})
	return out, nil
}

// rows reports whether batch dims with strides st, followed by m rows of
// stride rs, form one run of rows with stride rs.
func rows(batch, st []int, rs, m int) bool {
	want := rs * m
	for i := len(batch) - 1; i >= 0; i-- {
		if batch[i] != 1 && st[i] != want {
			return false
		}
		want *= batch[i]
	}
	return true
}

func allZero(v []int) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

func compileGemm(c *compileCtx) (kernel, error) {
	r := c.read("alpha", "beta", "transA", "transB", "broadcast")
	alpha, beta := r.float("alpha", 1), r.float("beta", 1)
	ta, tb := r.int("transA", 0), r.int("transB", 0)
	if r.err != nil {
		return nil, r.err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		a, b := in[0], in[1]
		if a.dtype != Float32 || b.dtype != Float32 && !b.isHalf() {
			return nil, fmt.Errorf("Gemm of %v and %v: only float32 is supported", a.dtype, b.dtype)
		}
		if a.Rank() != 2 || b.Rank() != 2 {
			return nil, fmt.Errorf("Gemm of shapes %v and %v: want 2-D inputs", a.shape, b.shape)
		}
		m, k := a.shape[0], a.shape[1]
		av := kernels.MatView{Data: a.Float32Data(), RS: k, CS: 1}
		if ta != 0 {
			m, k = k, m
			av = kernels.MatView{Data: a.Float32Data(), RS: 1, CS: m}
		}
		k2, n := b.shape[0], b.shape[1]
		rs, cs := n, 1
		if b.isHalf() {
			rs, cs = b.half().st[0], b.half().st[1]
		}
		if tb != 0 {
			k2, n = n, k2
			rs, cs = cs, rs
		}
		if k != k2 {
			return nil, fmt.Errorf("Gemm of shapes %v and %v (transA=%d, transB=%d): inner dimensions differ", a.shape, b.shape, ta, tb)
		}
		shape := []int{m, n}
		if m == 0 || n == 0 {
			return []*Tensor{ec.newF32(shape)}, nil
		}
		var out *Tensor
		bt := beta
		if len(in) > 2 && in[2] != nil && beta != 0 {
			cc := in[2]
			if cc.dtype != Float32 {
				return nil, fmt.Errorf("Gemm bias is %v", cc.dtype)
			}
			if bsh, err := broadcastShape(cc.shape, shape); err != nil || !sameShape(bsh, shape) {
				return nil, fmt.Errorf("Gemm bias of shape %v does not broadcast to %v", cc.shape, shape)
			}
			if sameShape(cc.shape, shape) {
				out = ec.outLike(2, Float32, shape)
				if &out.Float32Data()[0] != &cc.Float32Data()[0] {
					copy(out.Float32Data(), cc.Float32Data())
				}
			} else {
				out = ec.newF32(shape)
				st := broadcastStrides(cc.shape, stridesOf(cc.shape), 2)
				stridedCopy(1, rawBytes(out), rawBytes(cc), 4, shape, st, 0)
			}
		} else {
			out = ec.newF32(shape)
			bt = 0
		}
		if b.isHalf() {
			kernels.SgemmB(ec.threads, m, n, k, alpha, av, b.halfView(rs, cs), bt, out.Float32Data(), n)
		} else {
			kernels.Sgemm(ec.threads, m, n, k, alpha, av, kernels.MatView{Data: b.Float32Data(), RS: rs, CS: cs}, bt, out.Float32Data(), n)
		}
		return []*Tensor{out}, nil
	}, nil
}
