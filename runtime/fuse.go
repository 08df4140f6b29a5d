package runtime

import (
	"fmt"
	"strings"
)

// Fusions replace chains of nodes that PyTorch's exporter emits for one
// operation by one kernel, so that large intermediates (attention scores,
// normalized states) are not written and read back several times. The chains
// are listed in fusions below.
//
// A chain fuses only where its intermediate values are read by nothing else
// in the plan (fetched taps and fed values included). Each fused kernel checks
// its conditions on the actual shapes and otherwise runs the original nodes.
//
// Fused kernels perform the same float32 operations in the same order as the
// nodes they replace, so results are bitwise identical with and without
// fusion (the first Run of a plan, which also evaluates the shape-only nodes,
// runs unfused).

// fusions are the fused patterns, in priority order: each matches on the nodes
// that no earlier one absorbed, trying every node as the end of its chain.
// Each lives in its own file; the fused unit's op is "Fused" + the label its
// commit gives (FusedAttention, FusedAttentionPV, FusedRMSNorm, ...).
var fusions = []func(f *fuser, n *node){
	// MatMul → [Div|Mul scalar] → [Add mask | Where] → Softmax (fuse_attention.go)
	(*fuser).attention,
	// Pow → ReduceMean → Add(eps) → Sqrt → Div(1, ·) → Mul(x) → Mul(w) (fuse_rmsnorm.go)
	(*fuser).rmsNorm,
	// Mul(x, Sigmoid(x)) [→ Mul(·, up)] (fuse_swiglu.go)
	(*fuser).swiGLU,
	// x·cos + rotate_half(x)·sin on slices of one tensor (fuse_rope.go)
	(*fuser).rope,
	// Transposes folded into a MatMul's operands and output (fuse_matmul.go)
	(*fuser).matmulTransposes,
}

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
	for _, match := range fusions {
		for _, n := range nodes {
			if !f.absorbed[n] {
				match(f, n)
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
// or a static value of the plan (a small 16-bit weight widened, a large one
// as stored).
func (f *fuser) constant(v int) *Tensor {
	if v < 0 {
		return nil
	}
	t, ok := f.static[v]
	if !ok && f.s.inits[v] != nil {
		var err error
		if t, err = f.s.initializer(v); err != nil {
			return nil
		}
	}
	if t.isHalf() && t.Len() <= smallHalf {
		return f.s.halfs.get(t)
	}
	return t
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
	f.fused[anchor] = unit{label: label, op: "Fused" + name, in: in, out: anchor.out, stored: storedInputs["Fused"+name], run: func(ec *execCtx, ins []*Tensor) ([]*Tensor, error) {
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
		// 16-bit weights the node does not take as stored: widened (large
		// ones into the Run's pool, returned when the Run ends).
		ec.widenInputs(in, storedInputs[n.op])
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
