package runtime

import "github.com/onnxslm/onnxslm/runtime/internal/kernels"

// Attention fused through the product with V: softmax(Q·Kᵀ ⊘ c + mask)·V,
// computed one (batch, head) item at a time. The scores of an item (T×S
// floats) live in a scratch buffer that stays in cache while they are scaled,
// masked, normalized and multiplied by V, instead of a [B, H, T, S] tensor
// written out and read back twice; for long sequences this is also what keeps
// memory linear in T (at T = 2048 the full score tensor of a 16-head model is
// 256 MB per batch row).
//
// Each item runs the same sgemm calls (same blocking, same kernels) and the
// same row operations as the unfused MatMul → Div → Add → Softmax → MatMul
// chain, so results are bitwise identical to it.

// attentionPVKernel computes transpose(softmax(scale(Q·K) + mask)·V, outPerm)
// with Q, K and V viewed through qPerm, kPerm and vPerm. ok is false when the
// shapes are not the plain case (broadcasting that enlarges the scores or the
// product, vectors, empty rows): the original nodes then run.
func attentionPVKernel(ec *execCtx, q, k, v *Tensor, qPerm, kPerm, vPerm, outPerm []int, scale string, c float32, mask, cond *Tensor, y float32) (*Tensor, bool, error) {
	if q.dtype != Float32 || k.dtype != Float32 || v.dtype != Float32 ||
		mask != nil && mask.dtype != Float32 || cond != nil && cond.dtype != Bool {
		return nil, false, nil
	}
	for _, c := range []struct {
		t    *Tensor
		perm []int
	}{{q, qPerm}, {k, kPerm}, {v, vPerm}} {
		if c.t.Rank() < 2 || c.perm != nil && len(c.perm) != c.t.Rank() {
			return nil, false, nil
		}
	}
	Q, K, V := permuted(q, qPerm), permuted(k, kPerm), permuted(v, vPerm)
	rq, rk, rv := len(Q.shape), len(K.shape), len(V.shape)
	m, d := Q.shape[rq-2], Q.shape[rq-1]
	s := K.shape[rk-1]
	n := V.shape[rv-1]
	if K.shape[rk-2] != d || V.shape[rv-2] != s || s == 0 {
		return nil, false, nil
	}
	batch, err := broadcastShape(Q.shape[:rq-2], K.shape[:rk-2])
	if err != nil {
		return nil, false, nil
	}
	if b2, err := broadcastShape(batch, V.shape[:rv-2]); err != nil || !sameShape(b2, batch) {
		return nil, false, nil
	}
	nbd := len(batch)
	r := nbd + 2
	scores := append(append([]int{}, batch...), m, s)
	// Mask strides over the scores' dims (0 where broadcast).
	var mst []int
	if mt := mask; mt != nil || cond != nil {
		if mt == nil {
			mt = cond
		}
		if b, err := broadcastShape(scores, mt.shape); err != nil || !sameShape(b, scores) {
			return nil, false, nil
		}
		mst = broadcastStrides(mt.shape, stridesOf(mt.shape), r)
	}
	// The output: [batch..., m, n] written through outPerm (last axis kept).
	full := append(append([]int{}, batch...), m, n)
	shape, cst := full, stridesOf(full)
	if outPerm != nil {
		if len(outPerm) != r || outPerm[r-1] != r-1 {
			return nil, false, nil
		}
		shape, cst = permutedOutput(full, outPerm)
	}
	checkAlloc(m*s, 4) // the scratch scores of one item
	out := ec.newF32(shape)
	od := out.Float32Data()
	nb := numel(batch)
	if nb == 0 || m == 0 || n == 0 {
		return out, true, nil
	}
	ldc := cst[r-2]
	bst := func(v opView) []int {
		nd := len(v.shape) - 2
		return broadcastStrides(v.shape[:nd], v.st, nbd)
	}
	qSt, kSt, vSt := bst(Q), bst(K), bst(V)
	// Items in parallel, each multiply on one thread; with fewer items than
	// threads, the multiplies take the threads.
	threads, inner := ec.threads, 1
	if nb < threads {
		threads, inner = 1, ec.threads
	}
	parallelFor(threads, nb, m*s*(d+n)*2, func(lo, hi int) {
		sc := ec.s.pool.get(m * s)
		defer ec.s.pool.put(sc)
		for it := lo; it < hi; it++ {
			rem := it
			offQ, offK, offV, offC, offM := 0, 0, 0, 0, 0
			for i := nbd - 1; i >= 0; i-- {
				x := rem % batch[i]
				rem /= batch[i]
				offQ += x * qSt[i]
				offK += x * kSt[i]
				offV += x * vSt[i]
				offC += x * cst[i]
				if mst != nil {
					offM += x * mst[i]
				}
			}
			kernels.Sgemm(inner, m, s, d, 1, kernels.MatView{Data: Q.data, Off: offQ, RS: Q.st[rq-2], CS: Q.st[rq-1]},
				kernels.MatView{Data: K.data, Off: offK, RS: K.st[rk-2], CS: K.st[rk-1]}, 0, sc, s)
			rowMs := 0
			if mst != nil {
				rowMs = mst[r-1]
			}
			for t := range m {
				o := offM
				if mst != nil {
					o += t * mst[r-2]
				}
				scoreRow(sc[t*s:(t+1)*s], scale, c, mask, cond, o, rowMs, y)
			}
			kernels.Sgemm(inner, m, n, s, 1, kernels.MatView{Data: sc, RS: s, CS: 1},
				kernels.MatView{Data: V.data, Off: offV, RS: V.st[rv-2], CS: V.st[rv-1]}, 0, od[offC:], ldc)
		}
	})
	return out, true, nil
}
