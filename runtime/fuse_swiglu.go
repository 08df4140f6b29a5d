package runtime

import "github.com/onnxslm/onnxslm/runtime/internal/kernels"

// swiGLU fuses Mul(x, Sigmoid(x)) and, when its only reader is another Mul,
// that product too: silu(x) · up.
func (f *fuser) swiGLU(n *node) {
	if n.op != "Mul" {
		return
	}
	var x int
	var sig *node
	for _, k := range [2]int{0, 1} {
		if s := f.from(n.in[k], "Sigmoid"); s != nil && s.in[0] == n.in[1-k] {
			sig, x = s, n.in[1-k]
			break
		}
	}
	if sig == nil {
		return
	}
	chain := []*node{sig, n}
	in := []int{x}
	// A following Mul by another value (the up projection).
	if up := f.onlyReader(n.out[0]); up != nil && up.op == "Mul" {
		for k := range 2 {
			if up.in[k] == n.out[0] && up.in[1-k] != n.out[0] {
				chain = append(chain, up)
				in = append(in, up.in[1-k])
				break
			}
		}
	}
	f.commit("SwiGLU", chain, in, func(ec *execCtx, in []*Tensor) (*Tensor, bool, error) {
		var up *Tensor
		if len(in) > 1 {
			up = in[1]
		}
		return siluKernel(ec, in[0], up)
	})
}

// siluKernel computes x·sigmoid(x) (times up when given, of the same shape).
func siluKernel(ec *execCtx, x, up *Tensor) (*Tensor, bool, error) {
	if x.dtype != Float32 || up != nil && (up.dtype != Float32 || !sameShape(up.shape, x.shape)) {
		return nil, false, nil
	}
	out := ec.newF32(append([]int{}, x.shape...))
	xd, od := x.Float32Data(), out.Float32Data()
	const blk = 512
	parallelFor(ec.threads, (len(xd)+blk-1)/blk, blk*4, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			s, e := b*blk, min((b+1)*blk, len(xd))
			kernels.Sigmoid(od[s:e], xd[s:e])
			f32Row(opMul, od[s:e], od[s:e], xd[s:e], 1, 1)
			if up != nil {
				f32Row(opMul, od[s:e], od[s:e], up.Float32Data()[s:e], 1, 1)
			}
		}
	})
	return out, true, nil
}
