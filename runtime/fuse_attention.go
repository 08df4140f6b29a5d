package runtime

import (
	"math"

	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

// attention fuses MatMul → [scale] → [mask] → Softmax(last axis).
func (f *fuser) attention(sm *node) {
	if sm.op != "Softmax" || f.s.opset < 13 || intAttr(sm, "axis", -1) != -1 {
		return
	}
	var chain []*node
	scale := ""
	var scaleBy float32
	maskKind := ""
	var maskIn []int // Add: [mask]; Where: [cond, y]
	v := sm.in[0]
	// scoresSide reports whether x is the product side of the mask op: a
	// private MatMul, or a private scaling of one.
	scoresSide := func(x int) bool {
		if d := f.from(x, "Div", "Mul"); d != nil {
			_, ok := f.scalar(d.in[1])
			return ok && f.from(d.in[0], "MatMul") != nil
		}
		return f.from(x, "MatMul") != nil
	}
	if n := f.from(v, "Add", "Where"); n != nil {
		switch n.op {
		case "Add":
			// The mask is the other operand (a constant, or computed from an
			// attention_mask input).
			for k := range 2 {
				if scoresSide(n.in[k]) && n.in[1-k] != n.in[k] {
					maskKind, maskIn, v = "add", []int{n.in[1-k]}, n.in[k]
					break
				}
			}
		case "Where":
			if _, ok := f.scalar(n.in[2]); ok && scoresSide(n.in[1]) {
				maskKind, maskIn, v = "where", []int{n.in[0], n.in[2]}, n.in[1]
			}
		}
		if maskKind != "" {
			chain = append(chain, n)
		}
	}
	if n := f.from(v, "Div", "Mul"); n != nil {
		if c, ok := f.scalar(n.in[1]); ok {
			scale, scaleBy = n.op, c
			chain = append(chain, n)
			v = n.in[0]
		}
	}
	mm := f.from(v, "MatMul")
	if mm == nil || maskKind == "" && scale == "" {
		return
	}
	g := f.gemmOf(mm)
	// chain so far is softmax-side, innermost last; put it in run order.
	nodes := append([]*node{}, g.nodes...)
	for i := len(chain) - 1; i >= 0; i-- {
		nodes = append(nodes, chain[i])
	}
	nodes = append(nodes, sm)
	in := append([]int{g.a, g.b}, maskIn...)
	masks := func(in []*Tensor) (mask, cond *Tensor, y float32) {
		switch maskKind {
		case "add":
			mask = in[2]
		case "where":
			cond, y = in[2], in[3].Float32Data()[0]
		}
		return mask, cond, y
	}
	// Through the product with V when the probabilities are read by nothing
	// else: MatMul(P, V) [V transposed] [→ Transpose keeping the last axis].
	if pv := f.onlyReader(sm.out[0]); pv != nil && pv.op == "MatMul" && pv.in[0] == sm.out[0] && pv.in[1] != sm.out[0] {
		gv := f.gemmOf(pv)
		nodes = append(nodes, gv.nodes...)
		var outPerm []int
		if t := f.onlyReader(pv.out[0]); t != nil && t.op == "Transpose" {
			if p := permAttr(t); p != nil && p[len(p)-1] == len(p)-1 {
				outPerm = p
				nodes = append(nodes, t)
			}
		}
		vi := len(in)
		in = append(in, gv.b)
		f.commit("AttentionPV", nodes, in, func(ec *execCtx, in []*Tensor) (*Tensor, bool, error) {
			mask, cond, y := masks(in)
			return attentionPVKernel(ec, in[0], in[1], in[vi], g.aPerm, g.bPerm, gv.bPerm, outPerm, scale, scaleBy, mask, cond, y)
		})
		return
	}
	f.commit("Attention", nodes, in, func(ec *execCtx, in []*Tensor) (*Tensor, bool, error) {
		var mask, cond *Tensor
		var y float32
		switch maskKind {
		case "add":
			mask = in[2]
		case "where":
			cond = in[2]
			y = in[3].Float32Data()[0]
		}
		return attentionKernel(ec, in[0], in[1], g.aPerm, g.bPerm, scale, scaleBy, mask, cond, y)
	})
}

// attentionKernel computes softmax(A@B ⊘ c + mask) over the last axis, or
// softmax(where(cond, A@B ⊘ c, y)), where ⊘ is scale ("Div", "Mul" or "" for
// none). ok is false when the shapes are not the simple case (the mask would
// enlarge the scores).
func attentionKernel(ec *execCtx, a, b *Tensor, aPerm, bPerm []int, scale string, c float32, mask, cond *Tensor, y float32) (*Tensor, bool, error) {
	m := mask
	if cond != nil {
		m = cond
	}
	if mask != nil && mask.dtype != Float32 || cond != nil && cond.dtype != Bool {
		return nil, false, nil
	}
	scores, err := matmulView(ec, a, b, aPerm, bPerm, nil, 1)
	if err != nil {
		return nil, false, err
	}
	sh := scores.shape
	if len(sh) == 0 {
		return nil, false, nil
	}
	r := len(sh)
	var mst []int
	if m != nil {
		b, err := broadcastShape(sh, m.shape)
		if err != nil || !sameShape(b, sh) {
			ec.recycle(scores)
			return nil, false, nil
		}
		// Mask strides over the scores' dims (0 where broadcast).
		mst = broadcastStrides(m.shape, stridesOf(m.shape), r)
	}
	S := sh[r-1]
	outer := sh[:r-1]
	rowsN := numel(outer)
	sd := scores.Float32Data()
	parallelFor(ec.threads, rowsN, S*8, func(lo, hi int) {
		var w odometer // the mask's offset
		if mst != nil {
			w = newOdometer(outer, mst, 0, lo)
		}
		for row := lo; row < hi; row++ {
			x := sd[row*S : (row+1)*S]
			var ms int
			if mst != nil {
				ms = mst[r-1]
			}
			scoreRow(x, scale, c, mask, cond, w.off, ms, y)
			w.next()
		}
	})
	return scores, true, nil
}

// mulScalarRow sets o[i] = x[i]·c (as f32Row with a scalar operand, without
// putting the scalar in a slice, which would escape to the heap).
func mulScalarRow(o, x []float32, c float32) {
	n := 0
	if kernels.MulScalarTo != nil {
		n = len(o) &^ 7
		if n > 0 {
			kernels.MulScalarTo(o[:n], x[:n], c)
		}
	}
	for i := n; i < len(o); i++ {
		o[i] = x[i] * c
	}
}

// scoreRow turns one row of attention scores into probabilities in place:
// x ⊘ c (scale "Div", "Mul" or ""), then + mask[off + i·ms] or
// where(cond[off + i·ms], ·, y), then softmax.
func scoreRow(x []float32, scale string, c float32, mask, cond *Tensor, off, ms int, y float32) {
	if n := len(x); kernels.ScaleMaskMax != nil && n > 0 && n%8 == 0 && mask != nil && ms == 1 && (scale == "Div" || scale == "Mul") {
		// One pass for the scale, the mask and the maximum, then the
		// exponentials and their sum, then the normalization: the same
		// float32 operations as the general path below.
		m, nan := kernels.ScaleMaskMax(x, mask.Float32Data()[off:off+n], c, scale == "Div")
		if nan || math.IsInf(float64(m), -1) {
			for i := range x {
				x[i] = float32(math.NaN())
			}
			return
		}
		kernels.MulScalar(x, float32(1/kernels.ExpShiftSum(x, x, m)))
		return
	}
	cs := [1]float32{c}
	switch scale {
	case "Div":
		f32Row(opDiv, x, x, cs[:], 1, 0)
	case "Mul":
		f32Row(opMul, x, x, cs[:], 1, 0)
	}
	switch {
	case mask != nil:
		f32Row(opAdd, x, x, mask.Float32Data()[off:], 1, ms)
	case cond != nil:
		c := cond.BoolData()[off:]
		for i := range x {
			if !c[i*ms] {
				x[i] = y
			}
		}
	}
	softmaxRow(x, x, false)
}
