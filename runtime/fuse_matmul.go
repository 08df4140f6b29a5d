package runtime

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
