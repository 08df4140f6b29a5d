package runtime

import "math"

// rmsNorm fuses the exported RMSNorm chain ending in Mul(w, Mul(x, inv)).
func (f *fuser) rmsNorm(n *node) {
	if n.op != "Mul" {
		return
	}
	for _, side := range [2]int{0, 1} {
		if f.rmsNormFrom(n, n.in[side], n.in[1-side]) {
			return
		}
	}
}

// rmsNormFrom matches the chain whose last Mul (n) multiplies mv = Mul(x, inv)
// by the weight wv.
func (f *fuser) rmsNormFrom(n *node, mv, wv int) bool {
	m1 := f.from(mv, "Mul")
	if m1 == nil {
		return false
	}
	for _, k := range [2]int{0, 1} {
		x, dv := m1.in[k], m1.in[1-k]
		inv := f.from(dv, "Div", "Reciprocal")
		if inv == nil {
			continue
		}
		sv := inv.in[0]
		if inv.op == "Div" {
			if one, ok := f.scalar(inv.in[0]); !ok || one != 1 {
				continue
			}
			sv = inv.in[1]
		}
		sq := f.from(sv, "Sqrt")
		if sq == nil {
			continue
		}
		add := f.from(sq.in[0], "Add")
		if add == nil {
			continue
		}
		rv, ev := add.in[0], add.in[1]
		eps, ok := f.scalar(ev)
		if !ok {
			eps, ok = f.scalar(rv)
			rv = ev
		}
		if !ok {
			continue
		}
		rm := f.from(rv, "ReduceMean")
		if rm == nil || intAttr(rm, "keepdims", 1) != 1 || !f.lastAxisOnly(rm) {
			continue
		}
		pw := f.from(rm.in[0], "Pow")
		if pw == nil || pw.in[0] != x {
			continue
		}
		if two, ok := f.scalar(pw.in[1]); !ok || two != 2 {
			continue
		}
		chain := []*node{pw, rm, add, sq, inv, m1, n}
		f.commit("RMSNorm", chain, []int{x, wv}, func(ec *execCtx, in []*Tensor) (*Tensor, bool, error) {
			return rmsNormKernel(ec, in[0], in[1], eps)
		})
		return true
	}
	return false
}

// lastAxisOnly reports whether a ReduceMean reduces exactly axis -1.
func (f *fuser) lastAxisOnly(rm *node) bool {
	axes, ok, err := attrsOf(rm.proto).ints("axes")
	if err != nil {
		return false
	}
	if !ok && len(rm.in) > 1 {
		t := f.constant(rm.in[1])
		if t == nil {
			return false
		}
		if axes, err = t.Int64s(); err != nil {
			return false
		}
	}
	return len(axes) == 1 && axes[0] == -1
}

// rmsNormKernel computes w · (x · 1/sqrt(mean(x², last axis) + eps)) with the
// float32 roundings of the unfused chain.
func rmsNormKernel(ec *execCtx, x, w *Tensor, eps float32) (*Tensor, bool, error) {
	if x.dtype != Float32 || w.dtype != Float32 || x.Rank() == 0 {
		return nil, false, nil
	}
	d := x.shape[x.Rank()-1]
	if w.Len() != d || w.Rank() > 1 && numel(w.shape[:w.Rank()-1]) != 1 || d == 0 {
		return nil, false, nil
	}
	out := ec.newF32(append([]int{}, x.shape...))
	xd, od, wd := x.Float32Data(), out.Float32Data(), w.Float32Data()
	rowsN := len(xd) / d
	parallelFor(ec.threads, rowsN, d*4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := xd[r*d : (r+1)*d]
			// As Pow(x, 2) then ReduceMean: float32 squares summed by sumLanes.
			ms := float32(sumSquaresLanes(row) / float64(d))
			inv := 1 / float32(math.Sqrt(float64(ms+eps)))
			o := od[r*d : (r+1)*d]
			mulScalarRow(o, row, inv)
			f32Row(opMul, o, wd, o, 1, 1)
		}
	})
	return out, true, nil
}
