package runtime

import (
	"fmt"
	"math"
	"strings"

	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

// Fusions replace chains of nodes that PyTorch's exporter emits for one
// operation by one kernel, so that large intermediates (attention scores,
// normalized states) are not written and read back several times:
//
//   - attention: MatMul → [Div|Mul by a scalar] → [Add mask | Where(mask, ·, y)]
//     → Softmax(last axis) becomes one matmul followed by one pass per row
//     that scales, masks and normalizes it while it is in cache;
//   - Transposes feeding a MatMul (K^T, V) or following it (heads back to
//     [B, T, H, D]) become strides of the matmul's operands and output;
//   - RMSNorm: Pow(x, 2) → ReduceMean(last) → Add(eps) → Sqrt → Div(1, ·) (or
//     Reciprocal) → Mul(x, ·) → Mul(w, ·) becomes one pass per row;
//   - SiLU / SwiGLU: Mul(x, Sigmoid(x)) [→ Mul(·, up)] becomes one pass.
//
// A chain fuses only where its intermediate values are read by nothing else
// in the plan (fetched taps and fed values included). Each fused kernel checks
// its conditions on the actual shapes and otherwise runs the original nodes.
//
// Fused kernels perform the same float32 operations in the same order as the
// nodes they replace, so results are bitwise identical with and without
// fusion (the first Run of a plan, which also evaluates the shape-only nodes,
// runs unfused).

// fuser holds what pattern matching needs about one plan.
type fuser struct {
	s        *Session
	uses     map[int]int     // reads of each value in the plan (+1 if fetched)
	prod     map[int]*node   // producer of each value within the plan
	readers  map[int][]*node // nodes of the plan reading each value
	fed      []bool
	static   map[int]*Tensor
	absorbed map[*node]bool
	fused    map[*node]unit // anchor (last node of a chain) -> fused unit
}

func (s *Session) fuse(nodes []*node, fed []bool, fetch []int, static map[int]*Tensor) []unit {
	f := &fuser{s: s, uses: map[int]int{}, prod: map[int]*node{}, readers: map[int][]*node{}, fed: fed, static: static,
		absorbed: map[*node]bool{}, fused: map[*node]unit{}}
	for _, n := range nodes {
		for _, v := range n.in {
			if v >= 0 {
				f.uses[v]++
				f.readers[v] = append(f.readers[v], n)
			}
		}
		for _, v := range n.out {
			if v >= 0 {
				f.prod[v] = n
			}
		}
	}
	for _, v := range fetch {
		f.uses[v]++
	}
	// Patterns in priority order; each skips nodes an earlier one absorbed.
	for _, match := range []func(*node){f.attention, f.rmsNorm, f.swiGLU, f.rope, f.matmulTransposes} {
		for _, n := range nodes {
			if !f.absorbed[n] {
				match(n)
			}
		}
	}
	units := make([]unit, 0, len(nodes))
	for _, n := range nodes {
		if u, ok := f.fused[n]; ok {
			units = append(units, u)
		} else if !f.absorbed[n] {
			units = append(units, nodeUnit(n))
		}
	}
	return units
}

// from returns the producer of v if it is an op node of this plan whose
// output v is private to the chain (read once, not fetched, not fed) and not
// already part of another fusion.
func (f *fuser) from(v int, ops ...string) *node {
	if v < 0 || f.fed[v] || f.uses[v] != 1 {
		return nil
	}
	n := f.prod[v]
	if n == nil || f.absorbed[n] || len(n.out) == 0 || n.out[0] != v {
		return nil
	}
	for _, op := range ops {
		if n.op == op {
			return n
		}
	}
	return nil
}

// constant returns v's value when it is known before the Run: an initializer
// or a static value of the plan.
func (f *fuser) constant(v int) *Tensor {
	if v < 0 {
		return nil
	}
	if t, ok := f.static[v]; ok {
		return t
	}
	if f.s.inits[v] != nil {
		if t, err := f.s.initializer(v); err == nil {
			return t
		}
	}
	return nil
}

// scalar returns v's value when it is a known one-element float32.
func (f *fuser) scalar(v int) (float32, bool) {
	t := f.constant(v)
	if t == nil || t.dtype != Float32 || t.Len() != 1 {
		return 0, false
	}
	return t.Float32Data()[0], true
}

// commit records a fused unit replacing chain (anchor last).
func (f *fuser) commit(name string, chain []*node, in []int, run func(ec *execCtx, in []*Tensor) (*Tensor, bool, error)) {
	anchor := chain[len(chain)-1]
	for _, n := range chain {
		f.absorbed[n] = true
	}
	ops := make([]string, len(chain))
	for i, n := range chain {
		ops[i] = n.op
	}
	// Inputs of the chain's nodes from outside it that the fused kernel does
	// not take (constants: a Slice's starts, a scale) are kept for runChain;
	// any other is added to the unit's inputs.
	made := map[int]bool{}
	for _, n := range chain {
		for _, o := range n.out {
			made[o] = true
		}
	}
	ext := map[int]bool{}
	for _, v := range in {
		ext[v] = true
	}
	consts := map[int]*Tensor{}
	for _, n := range chain {
		for _, v := range n.in {
			if v < 0 || made[v] || ext[v] {
				continue
			}
			if t := f.constant(v); t != nil {
				consts[v] = t
			} else {
				in = append(in, v)
				ext[v] = true
			}
		}
	}
	label := fmt.Sprintf("%s (fused %s: %s)", anchor.label(), name, strings.Join(ops, "+"))
	f.fused[anchor] = unit{label: label, op: "Fused" + name, in: in, out: anchor.out, run: func(ec *execCtx, ins []*Tensor) ([]*Tensor, error) {
		out, ok, err := run(ec, ins)
		if err != nil {
			return nil, err
		}
		if !ok {
			return runChain(ec, chain, in, ins, consts)
		}
		res := make([]*Tensor, len(anchor.out))
		res[0] = out
		return res, nil
	}}
}

// runChain runs the original nodes of a fused chain (when a fused kernel's
// conditions do not hold), given the chain's external inputs and constants.
func runChain(ec *execCtx, chain []*node, ext []int, ins []*Tensor, consts map[int]*Tensor) ([]*Tensor, error) {
	local := map[int]*Tensor{}
	for v, t := range consts {
		local[v] = t
	}
	for i, v := range ext {
		local[v] = ins[i]
	}
	ec.reuse = nil
	var out []*Tensor
	for _, n := range chain {
		in := make([]*Tensor, len(n.in))
		for i, v := range n.in {
			if v >= 0 {
				in[i] = local[v]
			}
		}
		ec.in = in
		var err error
		if out, err = n.run(ec, in); err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.label(), n.op, err)
		}
		for i, v := range n.out {
			if v >= 0 && i < len(out) {
				local[v] = out[i]
			}
		}
	}
	return out, nil
}

// intAttr reads an INT attribute of a node (def when absent or malformed).
func intAttr(n *node, name string, def int64) int64 {
	v, err := attrsOf(n.proto).int(name, def)
	if err != nil {
		return def
	}
	return v
}

// permAttr reads a Transpose's perm (nil when absent).
func permAttr(n *node) []int {
	p, ok, err := attrsOf(n.proto).ints("perm")
	if err != nil || !ok {
		return nil
	}
	out := make([]int, len(p))
	for i, v := range p {
		if v < 0 || int(v) >= len(p) {
			return nil
		}
		out[i] = int(v)
	}
	return out
}

// gemmChain is a MatMul with the Transposes folded into it.
type gemmChain struct {
	mm           *node
	nodes        []*node // transposes and the MatMul, in order
	a, b         int     // operand values (inputs of the folded transposes)
	aPerm, bPerm []int
}

// gemmOf matches the MatMul producing v (private to the chain) with the
// Transposes that feed it.
func (f *fuser) gemmOf(mm *node) gemmChain {
	g := gemmChain{mm: mm, a: mm.in[0], b: mm.in[1]}
	if t := f.from(mm.in[0], "Transpose"); t != nil {
		if p := permAttr(t); p != nil {
			g.a, g.aPerm = t.in[0], p
			g.nodes = append(g.nodes, t)
		}
	}
	if t := f.from(mm.in[1], "Transpose"); t != nil {
		if p := permAttr(t); p != nil {
			g.b, g.bPerm = t.in[0], p
			g.nodes = append(g.nodes, t)
		}
	}
	g.nodes = append(g.nodes, mm)
	return g
}

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
		mst = make([]int, r)
		ms := stridesOf(m.shape)
		for i := range r {
			if j := i - (r - m.Rank()); j >= 0 && m.shape[j] != 1 {
				mst[i] = ms[j]
			}
		}
	}
	S := sh[r-1]
	outer := sh[:r-1]
	rowsN := numel(outer)
	sd := scores.Float32Data()
	parallelFor(ec.threads, rowsN, S*8, func(lo, hi int) {
		idx := make([]int, len(outer))
		off := 0
		rem := lo
		for i := len(outer) - 1; i >= 0; i-- {
			idx[i] = rem % outer[i]
			rem /= outer[i]
			if mst != nil {
				off += idx[i] * mst[i]
			}
		}
		for row := lo; row < hi; row++ {
			x := sd[row*S : (row+1)*S]
			var ms int
			if mst != nil {
				ms = mst[r-1]
			}
			scoreRow(x, scale, c, mask, cond, off, ms, y)
			if mst == nil {
				continue
			}
			for i := len(outer) - 1; i >= 0; i-- {
				idx[i]++
				off += mst[i]
				if idx[i] < outer[i] {
					break
				}
				off -= mst[i] * outer[i]
				idx[i] = 0
			}
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

// matmulTransposes folds Transposes into a MatMul: on its inputs, and on its
// output when the output's only reader is a Transpose keeping the last axis.
func (f *fuser) matmulTransposes(n *node) {
	var mm, tout *node
	var outPerm []int
	switch n.op {
	case "Transpose":
		mm = f.from(n.in[0], "MatMul")
		p := permAttr(n)
		if mm == nil || p == nil || p[len(p)-1] != len(p)-1 {
			return
		}
		tout, outPerm = n, p
	case "MatMul":
		// A Transpose reading the product folds in from the Transpose's side.
		if r := f.onlyReader(n.out[0]); r != nil && r.op == "Transpose" {
			if p := permAttr(r); p != nil && p[len(p)-1] == len(p)-1 {
				return
			}
		}
		mm = n
	default:
		return
	}
	g := f.gemmOf(mm)
	if g.aPerm == nil && g.bPerm == nil && outPerm == nil {
		return
	}
	nodes := g.nodes
	if tout != nil {
		nodes = append(nodes, tout)
	}
	f.commit("MatMul", nodes, []int{g.a, g.b}, func(ec *execCtx, in []*Tensor) (*Tensor, bool, error) {
		if outPerm != nil && (in[0].Rank() < 2 || in[1].Rank() < 2 || len(outPerm) != max(len(permuted(in[0], g.aPerm).shape), len(permuted(in[1], g.bPerm).shape))) {
			return nil, false, nil
		}
		t, err := matmulView(ec, in[0], in[1], g.aPerm, g.bPerm, outPerm, 1)
		return t, err == nil, err
	})
}

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

// onlyReader returns the one node of the plan reading v when v is private
// (read once, not fetched, not fed) and that node is not yet fused.
func (f *fuser) onlyReader(v int) *node {
	if v < 0 || f.fed[v] || f.uses[v] != 1 || len(f.readers[v]) != 1 {
		return nil
	}
	if r := f.readers[v][0]; !f.absorbed[r] {
		return r
	}
	return nil
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
