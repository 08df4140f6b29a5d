package discover

import (
	"slices"
	"sort"

	"github.com/onnxslm/onnxslm/graph"
)

// This file builds Layer.Projections and Layer.Norms from a layer's slots: which
// node reads each weight, its bias, where its result goes, and, from the shape
// of the attention and the MLP, what each projection computes.

// reshapeOps change a tensor's shape, not its values or their order.
var reshapeOps = map[string]bool{"Reshape": true, "Flatten": true, "Squeeze": true, "Unsqueeze": true, "Identity": true}

// activationOps are the nonlinearities a gated MLP applies to its gate (whole,
// or as a part of a decomposed SiLU or GELU).
var activationOps = map[string]bool{
	"Sigmoid": true, "Tanh": true, "Relu": true, "Gelu": true, "Erf": true, "Softplus": true,
	"Elu": true, "Selu": true, "LeakyRelu": true, "HardSigmoid": true, "HardSwish": true, "Mish": true,
	"FastGelu": true, "BiasGelu": true, "QuickGelu": true,
}

// projections describes layer k's projections (ordered by weight slot, then by
// the use's structural key) and norms (ordered by slot).
func (l *layering) projections(k int, params []*layerParam) ([]Projection, []Norm) {
	type found struct {
		p    Projection
		node *graph.Node
		data *graph.Value
		key  uint64
	}
	var list []found
	biasAdds := map[*graph.Node]bool{}
	type bias struct {
		slot int
		node *graph.Node
	}
	biasOf := map[*graph.Node]bias{}
	extra := map[*graph.Node][]WeightInput{} // quantized projections' scales and zero points
	for slot, lp := range params {
		for _, u := range lp.uses {
			switch u.kind {
			case ProjWeight:
				if mm := int8ScaleOf(u.reader); mm != nil {
					extra[mm] = append(extra[mm], WeightInput{Part: Scales, Node: u.reader.Index, Input: u.input, Slot: slot, Name: lp.value.Name})
					continue
				}
				_, data, _ := isProjection(u.reader)
				if st, parts, ok := quantProjection(u.reader); ok {
					wi := WeightInput{Part: parts[u.input], Node: u.reader.Index, Input: u.input, Slot: slot, Name: lp.value.Name}
					if u.input != 1 {
						extra[u.reader] = append(extra[u.reader], wi)
						continue
					}
					p := Projection{Node: u.reader.Index, Op: u.reader.Op, Storage: st, Weights: []WeightInput{wi}, Bias: -1, BiasNode: -1}
					if st == NBits {
						p.In, p.Out = u.reader.AttrInt("K", 0), u.reader.AttrInt("N", 0)
						p.Bits, p.BlockSize = int(u.reader.AttrInt("bits", 4)), int(u.reader.AttrInt("block_size", 0))
					} else if d := lp.tensor.Dims; len(d) == 2 {
						p.In, p.Out = d[0], d[1]
					}
					list = append(list, found{p: p, node: u.reader, data: data, key: u.key})
					continue
				}
				p := Projection{Node: u.reader.Index, Op: u.reader.Op, Storage: Dense,
					Weights:    []WeightInput{{Part: Matrix, Node: u.reader.Index, Input: u.input, Slot: slot, Name: lp.value.Name}},
					Transposed: u.transposed, Bias: -1, BiasNode: -1}
				if d := lp.tensor.Dims; len(d) == 2 {
					p.In, p.Out = d[0], d[1]
					if u.transposed {
						p.In, p.Out = d[1], d[0]
					}
				}
				list = append(list, found{p: p, node: u.reader, data: data, key: u.key})
			case ProjBias:
				if u.reader.Op == "Add" {
					biasAdds[u.reader] = true
				}
				if isProjectionNode(u.reader) {
					biasOf[u.reader] = bias{slot, u.reader}
				} else if skipBias(u.reader) != nil && u.input == 4 {
					// A skip norm adds it with the branch: the projection
					// writing that branch (in this layer) is its owner.
					for _, in := range u.reader.Inputs[:2] {
						if in != nil && isProjectionNode(in.Producer) && l.owner[in.Producer] == k {
							biasOf[in.Producer] = bias{slot, u.reader}
						}
					}
				} else if isBiasGelu(u.reader) && u.input == 1 {
					// FastGelu/BiasGelu adds the bias of the projection
					// before (the transformer optimizer's FusionBiasGelu).
					if in := u.reader.Inputs[0]; in != nil && isProjectionNode(in.Producer) && l.owner[in.Producer] == k {
						biasOf[in.Producer] = bias{slot, u.reader}
					}
				} else if u.reader.Op == "Add" {
					if o := throughIdentity(otherInput(u.reader, u.input)); o != nil && isProjectionNode(o.Producer) {
						if _, done := biasOf[o.Producer]; !done {
							biasOf[o.Producer] = bias{slot, u.reader}
						}
					}
				}
			}
		}
	}
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.p.Weights[0].Slot != b.p.Weights[0].Slot {
			return a.p.Weights[0].Slot < b.p.Weights[0].Slot
		}
		return a.key < b.key
	})
	nodes := make([]*graph.Node, len(list))
	data := make([]*graph.Value, len(list))
	for i, f := range list {
		nodes[i], data[i] = f.node, f.data
	}
	roles := l.projRoles(k, nodes, data)
	projs := make([]Projection, len(list))
	for i, f := range list {
		p := f.p
		p.Role = roles[i]
		ws := extra[f.node]
		sort.Slice(ws, func(a, b int) bool { return ws[a].Part < ws[b].Part })
		p.Weights = append(p.Weights, ws...)
		out := firstOutput(f.node)
		if b, ok := biasOf[f.node]; ok {
			p.Bias, p.BiasNode = b.slot, b.node.Index
			if !isSkipNorm(b.node) && !isBiasGelu(b.node) { // added inside a skip norm or a gelu: no value holds the sum
				out = firstOutput(b.node)
			}
		}
		if p.Storage == Int8PerTensor {
			if mul := int8ScaleMul(f.node); mul != nil {
				out = firstOutput(mul)
			}
		}
		if out != nil {
			p.Output = out.Name
		}
		p.Residual = l.residual(k, f.node, biasAdds)
		projs[i] = p
	}
	return projs, l.norms(params)
}

func firstOutput(x *graph.Node) *graph.Value {
	if len(x.Outputs) == 0 {
		return nil
	}
	return x.Outputs[0]
}

// residual follows the output of projection x through a bias Add and shape-only
// ops (which keep the row-major order of the values), at most 6 nodes, to an
// input of the node computing layer k's output; it returns that value's name, or
// "" when x's result does not get there.
func (l *layering) residual(k int, x *graph.Node, biasAdds map[*graph.Node]bool) string {
	if l.fused {
		// The layer's last branch is not added in the layer: the next layer's
		// input norm (or the final norm) adds it.
		if b := l.branchOut(k); b != nil && slices.Contains(x.Outputs, b) {
			return b.Name
		}
		return ""
	}
	sum := l.output[k].Producer
	if sum == nil || l.owner[sum] != k {
		return ""
	}
	cur := firstOutput(x)
	for step := 0; step < 6 && cur != nil && !slices.Contains(sum.Inputs, cur); step++ {
		readers := slices.Clone(cur.Consumers)
		sort.Slice(readers, func(i, j int) bool { return readers[i].Index < readers[j].Index })
		var next *graph.Value
		for _, n := range readers {
			ins := n.Inputs
			if l.owner[n] != k || len(n.Outputs) != 1 || n.Outputs[0] == nil || len(ins) == 0 {
				continue
			}
			if (n.Op == "Add" && biasAdds[n] && (ins[0] == cur || (len(ins) > 1 && ins[1] == cur))) ||
				(reshapeOps[n.Op] && ins[0] == cur) {
				next = n.Outputs[0]
				break
			}
		}
		cur = next
	}
	if cur == nil || !slices.Contains(sum.Inputs, cur) {
		return ""
	}
	return cur.Name
}

// norms pairs each norm's scale with its shift: the shift is read by the same
// normalization op, or added right after the Mul that applies the scale.
func (l *layering) norms(params []*layerParam) []Norm {
	var norms []Norm
	at := map[*graph.Node]int{}
	for slot, lp := range params {
		for _, u := range lp.uses {
			if u.kind == NormWeight {
				if _, dup := at[u.reader]; !dup {
					at[u.reader] = len(norms)
					norms = append(norms, Norm{Node: u.reader.Index, Op: u.reader.Op, Scale: slot, Shift: -1})
				}
			}
		}
	}
	for slot, lp := range params {
		for _, u := range lp.uses {
			if u.kind != NormBias {
				continue
			}
			i, ok := at[u.reader]
			if !ok && u.reader.Op == "Add" {
				if o := throughIdentity(otherInput(u.reader, u.input)); o != nil && o.Producer != nil {
					i, ok = at[o.Producer]
				}
			}
			switch {
			case ok && norms[i].Shift < 0:
				norms[i].Shift = slot
			case !ok:
				norms = append(norms, Norm{Node: u.reader.Index, Op: u.reader.Op, Scale: -1, Shift: slot})
			}
		}
	}
	first := func(n Norm) int {
		if n.Scale >= 0 {
			return n.Scale
		}
		return n.Shift
	}
	sort.SliceStable(norms, func(i, j int) bool { return first(norms[i]) < first(norms[j]) })
	return norms
}

// projRoles says what each projection (node, data input) of layer k computes,
// from the layer's one Softmax attention: q, k and v are the projections that
// reach QKᵀ's left and right and the weighted sum's values; o the first one
// after the attention; the others belong to the MLP, where down reads what the
// other MLP projections computed and, of two input projections, the gate is the
// one whose result passes an activation on its way to down.
func (l *layering) projRoles(k int, nodes []*graph.Node, data []*graph.Value) []ProjRole {
	roles := make([]ProjRole, len(nodes))
	var softmax *graph.Node
	for _, x := range l.nodes[k] {
		if isAttention(x) {
			if softmax != nil {
				return roles // several attentions: not a shape this knows
			}
			softmax = x
		}
	}
	if softmax == nil || len(softmax.Inputs) == 0 {
		return roles
	}
	var qIn, kIn, vIn *graph.Value
	weighted := softmax
	if isFusedAttention(softmax) || isONNXAttention(softmax) {
		// q at input 0; k and v at 1 and 2, or packed with q when those are
		// empty (or are the packed weights of an Attention that projects).
		qIn = softmax.Inputs[0]
		if len(softmax.Inputs) > 2 && computed(softmax.Inputs[1]) && computed(softmax.Inputs[2]) {
			kIn, vIn = softmax.Inputs[1], softmax.Inputs[2]
		} else {
			kIn, vIn = qIn, qIn
		}
	} else {
		scores := l.findMatMul(k, softmax.Inputs[0], false)
		weighted = l.findMatMul(k, firstOutput(softmax), true)
		if scores == nil || weighted == nil {
			return roles
		}
		qIn, kIn, vIn = scores.Inputs[0], scores.Inputs[1], weighted.Inputs[1]
	}
	if qIn == nil || firstOutput(weighted) == nil {
		return roles
	}
	reach := make([]map[*graph.Value]bool, len(nodes))
	for i, x := range nodes {
		reach[i] = map[*graph.Value]bool{}
		if o := firstOutput(x); o != nil {
			reach[i] = l.reachable(k, o)
		}
	}
	var rest []int
	for i := range nodes {
		if nodes[i] == softmax { // an Attention that projects q, k and v itself
			roles[i] = RoleQKV
			continue
		}
		q, kk, v := reach[i][qIn], reach[i][kIn], reach[i][vIn]
		switch {
		case q && kk && v:
			roles[i] = RoleQKV
		case q && !kk && !v:
			roles[i] = RoleQ
		case kk && !q && !v:
			roles[i] = RoleK
		case v && !q && !kk:
			roles[i] = RoleV
		case !q && !kk && !v:
			rest = append(rest, i)
		}
	}
	// o reads the attention's result, and no other projection does so first.
	after := l.reachable(k, firstOutput(weighted))
	var mlp []int
	for _, i := range rest {
		first := after[data[i]]
		for _, j := range rest {
			if j != i && after[data[j]] && reach[j][data[i]] {
				first = false
			}
		}
		if first {
			roles[i] = RoleO
		} else {
			mlp = append(mlp, i)
		}
	}
	var inputs, downs []int
	for _, i := range mlp {
		if slices.ContainsFunc(mlp, func(j int) bool { return j != i && reach[j][data[i]] }) {
			downs = append(downs, i)
		} else {
			inputs = append(inputs, i)
		}
	}
	if len(downs) != 1 {
		return roles
	}
	down := downs[0]
	roles[down] = RoleDown
	switch len(inputs) {
	case 1:
		roles[inputs[0]] = RoleUp
	case 2:
		a, b := l.gated(k, reach[inputs[0]], data[down]), l.gated(k, reach[inputs[1]], data[down])
		if a != b {
			roles[inputs[0]], roles[inputs[1]] = RoleUp, RoleUp
			if a {
				roles[inputs[0]] = RoleGate
			} else {
				roles[inputs[1]] = RoleGate
			}
		}
	}
	return roles
}

// gated reports whether an activation of layer k reads a value of from and
// reaches to.
func (l *layering) gated(k int, from map[*graph.Value]bool, to *graph.Value) bool {
	for _, x := range l.nodes[k] {
		if !activationOps[x.Op] || !slices.ContainsFunc(x.Inputs, func(v *graph.Value) bool { return from[v] }) {
			continue
		}
		if o := firstOutput(x); o != nil && l.reachable(k, o)[to] {
			return true
		}
	}
	return false
}

// findMatMul finds, breadth first within 8 nodes of v in layer k, a MatMul of two
// computed values: upstream of v (the attention scores QKᵀ, from the Softmax's
// input) or, when forward, downstream with v's values on its left (the weighted
// sum of values, from the Softmax's output).
func (l *layering) findMatMul(k int, v *graph.Value, forward bool) *graph.Node {
	seen := map[*graph.Node]bool{}
	level := []*graph.Value{v}
	reached := map[*graph.Value]bool{v: true}
	for depth := 0; depth < 8 && len(level) > 0; depth++ {
		var next []*graph.Value
		var candidates []*graph.Node
		for _, v := range level {
			if v == nil {
				continue
			}
			if forward {
				candidates = append(candidates, v.Consumers...)
			} else if v.Producer != nil {
				candidates = append(candidates, v.Producer)
			}
		}
		for _, x := range candidates {
			if seen[x] || l.owner[x] != k {
				continue
			}
			seen[x] = true
			if x.Op == "MatMul" && x.Domain == "" && len(x.Inputs) == 2 && computed(x.Inputs[0]) && computed(x.Inputs[1]) &&
				(!forward || reached[x.Inputs[0]]) {
				return x
			}
			vals := x.Outputs
			if !forward {
				vals = x.Inputs
			}
			for _, o := range vals {
				if o != nil && !reached[o] {
					reached[o] = true
					next = append(next, o)
				}
			}
		}
		level = next
	}
	return nil
}

// computed reports whether v is neither omitted nor a constant.
func computed(v *graph.Value) bool {
	if v == nil {
		return false
	}
	t, _ := resolveConst(v)
	return t == nil
}

// isBiasGelu reports whether n is a gelu that adds its input 1, the bias of
// the projection before, to its input 0 (FastGelu, BiasGelu).
func isBiasGelu(n *graph.Node) bool { return n.Op == "FastGelu" || n.Op == "BiasGelu" }
