package runtime

import "github.com/onnxslm/onnxslm/runtime/internal/kernels"

// The rotary position embedding as PyTorch exports Hugging Face's
// apply_rotary_pos_emb:
//
//	x1 = Slice(x, 0, D/2, last axis)      x2 = Slice(x, D/2, end, last axis)
//	rot = Concat(Neg(x2), x1, last axis)
//	out = Add(Mul(x, cos), Mul(rot, sin))
//
// seven nodes per projection (fourteen per layer), each writing a tensor the
// size of the queries or keys. The fusion computes out in one pass per row,
// reading x through the strides of the Transpose that usually produces it
// ([B, T, H, D] → [B, H, T, D]), with the same float32 operations:
// out[j] = x[j]·cos[j] + (−x[j+D/2])·sin[j] for j < D/2 and
// x[j]·cos[j] + x[j−D/2]·sin[j] after, so results are bitwise identical.

// ropeSlice is a Slice's constant starts, ends, axes and steps (nil when
// absent).
type ropeSlice struct {
	starts, ends, axes, steps []int64
}

// span resolves the slice on a tensor of rank r whose last axis has d
// elements: ok when it slices only the last axis with step 1, giving
// [lo, hi).
func (s ropeSlice) span(r, d int) (lo, hi int, ok bool) {
	if len(s.starts) != 1 || len(s.ends) != 1 || s.axes != nil && len(s.axes) != 1 || s.steps != nil && (len(s.steps) != 1 || s.steps[0] != 1) {
		return 0, 0, false
	}
	if s.axes == nil {
		if r != 1 {
			return 0, 0, false
		}
	} else if a, err := normAxis(s.axes[0], r); err != nil || a != r-1 {
		return 0, 0, false
	}
	start, _, n := sliceRange(s.starts[0], s.ends[0], 1, d)
	return start, start + n, true
}

// constInts returns the int64 values of a constant input (nil, true when the
// input is absent; false when it is not constant).
func (f *fuser) constInts(n *node, i int) ([]int64, bool) {
	if i >= len(n.in) || n.in[i] < 0 {
		return nil, true
	}
	t := f.constant(n.in[i])
	if t == nil {
		return nil, false
	}
	v, err := t.Int64s()
	return v, err == nil
}

func (f *fuser) sliceOf(n *node) (ropeSlice, bool) {
	var s ropeSlice
	if len(n.in) < 3 {
		return s, false
	}
	var ok1, ok2, ok3, ok4 bool
	s.starts, ok1 = f.constInts(n, 1)
	s.ends, ok2 = f.constInts(n, 2)
	s.axes, ok3 = f.constInts(n, 3)
	s.steps, ok4 = f.constInts(n, 4)
	return s, ok1 && ok2 && ok3 && ok4 && s.starts != nil && s.ends != nil
}

// rope fuses the chain ending in add (see above).
func (f *fuser) rope(add *node) {
	if add.op != "Add" || len(add.in) != 2 {
		return
	}
	for side := range 2 {
		m1 := f.from(add.in[side], "Mul")   // x · cos
		m2 := f.from(add.in[1-side], "Mul") // rot · sin
		if m1 == nil || m2 == nil || m1 == m2 {
			continue
		}
		for k2 := range 2 {
			cc := f.from(m2.in[k2], "Concat")
			sinV := m2.in[1-k2]
			if cc == nil || len(cc.in) != 2 || cc.in[0] < 0 || cc.in[1] < 0 {
				continue
			}
			neg := f.from(cc.in[0], "Neg")
			if neg == nil {
				continue
			}
			hiN := f.from(neg.in[0], "Slice")
			loN := f.from(cc.in[1], "Slice")
			if hiN == nil || loN == nil || hiN.in[0] != loN.in[0] {
				continue
			}
			x := hiN.in[0]
			cosV := -1
			for k1 := range 2 {
				if m1.in[k1] == x && m1.in[1-k1] != x {
					cosV = m1.in[1-k1]
				}
			}
			if cosV < 0 || sinV == x {
				continue
			}
			hi, ok1 := f.sliceOf(hiN)
			lo, ok2 := f.sliceOf(loN)
			if !ok1 || !ok2 {
				continue
			}
			axis := intAttr(cc, "axis", 0)
			chain := []*node{loN, hiN, neg, cc, m2, m1, add}
			in := []int{x, cosV, sinV}
			var perm []int
			// Fold the Transpose producing x when the chain is its only reader.
			if t := f.prod[x]; t != nil && t.op == "Transpose" && !f.fed[x] && !f.absorbed[t] && f.uses[x] == 3 && t.out[0] == x {
				readers := f.readers[x]
				if p := permAttr(t); p != nil && len(readers) == 3 && onlyAmong(readers, m1, loN, hiN) {
					perm = p
					in[0] = t.in[0]
					chain = append([]*node{t}, chain...)
				}
			}
			f.commit("RoPE", chain, in, func(ec *execCtx, in []*Tensor) (*Tensor, bool, error) {
				return ropeKernel(ec, in[0], perm, in[1], in[2], lo, hi, axis)
			})
			return
		}
	}
}

// onlyAmong reports whether every node of ns is one of want.
func onlyAmong(ns []*node, want ...*node) bool {
	for _, n := range ns {
		found := false
		for _, w := range want {
			found = found || n == w
		}
		if !found {
			return false
		}
	}
	return true
}

// ropeKernel computes x·cos + rotate_half(x)·sin over the last axis of
// transpose(x, perm); ok is false when the shapes or slices are not the
// rotate-half form (the original nodes then run).
func ropeKernel(ec *execCtx, x *Tensor, perm []int, cos, sin *Tensor, lo, hi ropeSlice, axis int64) (*Tensor, bool, error) {
	if x.dtype != Float32 || cos.dtype != Float32 || sin.dtype != Float32 || x.Rank() == 0 || perm != nil && len(perm) != x.Rank() {
		return nil, false, nil
	}
	xv := permuted(x, perm)
	shape := xv.shape
	r := len(shape)
	d := shape[r-1]
	h := d / 2
	if d == 0 || d%2 != 0 {
		return nil, false, nil
	}
	if a, err := normAxis(axis, r); err != nil || a != r-1 {
		return nil, false, nil
	}
	if s, e, ok := lo.span(r, d); !ok || s != 0 || e != h {
		return nil, false, nil
	}
	if s, e, ok := hi.span(r, d); !ok || s != h || e != d {
		return nil, false, nil
	}
	// cos and sin must broadcast to x's shape without enlarging it.
	bst := func(t *Tensor) ([]int, bool) {
		if b, err := broadcastShape(shape, t.shape); err != nil || !sameShape(b, shape) {
			return nil, false
		}
		return broadcastStrides(t.shape, stridesOf(t.shape), r), true
	}
	cst, ok1 := bst(cos)
	sst, ok2 := bst(sin)
	if !ok1 || !ok2 {
		return nil, false, nil
	}
	out := ec.newF32(append([]int{}, shape...))
	od, xd, cd, sd := out.Float32Data(), xv.data, cos.Float32Data(), sin.Float32Data()
	outer := shape[:r-1]
	rows := numel(outer)
	xs, cs, ss := xv.st[r-1], cst[r-1], sst[r-1]
	parallelFor(ec.threads, rows, d*4, func(r0, r1 int) {
		wx, wc, ws := newOdometer(outer, xv.st, 0, r0), newOdometer(outer, cst, 0, r0), newOdometer(outer, sst, 0, r0)
		for row := r0; row < r1; row++ {
			offX, offC, offS := wx.off, wc.off, ws.off
			o := od[row*d : (row+1)*d]
			if xs == 1 && cs == 1 && ss == 1 {
				ropeRow(o, xd[offX:offX+d], cd[offC:offC+d], sd[offS:offS+d], h)
			} else {
				for j := range d {
					xj := xd[offX+j*xs]
					var rot float32
					if j < h {
						rot = -xd[offX+(j+h)*xs]
					} else {
						rot = xd[offX+(j-h)*xs]
					}
					o[j] = float32(xj*cd[offC+j*cs]) + float32(rot*sd[offS+j*ss])
				}
			}
			wx.next()
			wc.next()
			ws.next()
		}
	})
	return out, true, nil
}

// ropeRow is one contiguous row: o = x·c + rotate_half(x)·s, each product
// rounded to float32 before the sum (as the unfused Mul, Mul, Add).
func ropeRow(o, x, c, s []float32, h int) {
	if kernels.RopeRow != nil && h%8 == 0 && h > 0 {
		kernels.RopeRow(o[:2*h], x[:2*h], c[:2*h], s[:2*h], h)
		return
	}
	x1, x2 := x[:h], x[h:2*h]
	o1, o2 := o[:h], o[h:2*h]
	c1, c2 := c[:h], c[h:2*h]
	s1, s2 := s[:h], s[h:2*h]
	for j := range o1 {
		o1[j] = float32(x1[j]*c1[j]) + float32(-x2[j]*s1[j])
	}
	for j := range o2 {
		o2[j] = float32(x2[j]*c2[j]) + float32(x1[j]*s2[j])
	}
}
