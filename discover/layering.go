package discover

// This file assigns every node to a layer or to the shared part (ownership),
// checks the layers are separable and finds each layer's KV-cache inputs.

import (
	"slices"

	"github.com/onnxslm/onnxslm/graph"
)

// layering assigns every node to a layer or to the shared part, and aligns the
// layers' parameters.
type layering struct {
	flow  *flow
	stack *Stack
	// firstStep is the index in flow.steps of layer 0's first step; period the
	// number of steps per layer; numLayers the number of layers.
	firstStep, period, numLayers int
	// fused: the residual adds happen in the next layer's input norm
	// (Stack.Branch); inNorm[k] is layer k's input norm then.
	fused  bool
	inNorm []*graph.Node
	owner  map[*graph.Node]int // layer index, or -1 for shared
	// inputCast marks the Casts of graph inputs given to a layer although
	// shared Shape nodes read them too (claimInputCasts).
	inputCast map[*graph.Node]bool
	branch    map[*graph.Node]int // residual branch within the layer, -1 unknown
	nodes     [][]*graph.Node     // per layer, topological order
	// input[k] and output[k] are h_k and h_{k+1}, the stream entering and leaving layer k.
	input, output []*graph.Value
	// pastInputs[k] are the graph inputs only layer k reads (its KV cache).
	pastInputs []map[*graph.Value]bool
	// globalValueHash and globalNodeHash memoise globalHash.
	globalValueHash map[*graph.Value]uint64
	globalNodeHash  map[*graph.Node]uint64

	// Per layer results of hashLayers: each node's alignment key and depth (in
	// nodes from the layer input), and each value's upstream and downstream hash.
	nodeKey   []map[*graph.Node]uint64
	nodeDepth []map[*graph.Node]int
	upHash    []map[*graph.Value]uint64
	downHash  []map[*graph.Value]uint64
}

func newLayering(f *flow, s *Stack, firstStep, period, numLayers int) *layering {
	return &layering{flow: f, stack: s, firstStep: firstStep, period: period, numLayers: numLayers,
		owner: map[*graph.Node]int{}, branch: map[*graph.Node]int{},
		globalValueHash: map[*graph.Value]uint64{}, globalNodeHash: map[*graph.Node]uint64{}}
}

func (l *layering) build() error {
	f := l.flow
	g := f.a.g
	for i := 0; i < l.numLayers; i++ {
		l.input = append(l.input, g.Value(l.stack.Hidden[i]))
		l.output = append(l.output, g.Value(l.stack.Hidden[i+1]))
	}
	// Data nodes: by the step their dominator says.
	for _, x := range f.dnodes {
		s := f.seg[x]
		if s >= l.firstStep && s < l.firstStep+l.numLayers*l.period {
			l.owner[x] = (s - l.firstStep) / l.period
			l.branch[x] = (s - l.firstStep) % l.period
		} else {
			l.owner[x] = -1
		}
	}
	if l.fused {
		// Each boundary norm is the next layer's input norm; the last one is
		// the final norm, shared.
		for i := 1; i <= l.numLayers; i++ {
			x := f.chain[l.firstStep+i*l.period]
			if i < l.numLayers {
				l.owner[x], l.branch[x] = i, 0
			} else {
				l.owner[x] = -1
				delete(l.branch, x)
			}
		}
	}
	// What h_0 is computed from (the embedding lookup and its inputs) is shared.
	stack := []*graph.Value{l.input[0]}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if v == nil {
			continue
		}
		if p := v.Producer; p != nil {
			if _, done := l.owner[p]; !done || l.owner[p] >= 0 {
				l.owner[p] = -1
				delete(l.branch, p)
				stack = append(stack, p.Inputs...)
			}
		}
	}
	// Other nodes (shapes, constants, weight transposes, masks): owned by a layer
	// when everything that reads them is in that layer.
	order := f.a.order
	for i := len(order) - 1; i >= 0; i-- {
		x := order[i]
		if _, done := l.owner[x]; done {
			continue
		}
		own, br := -2, -1
		for _, o := range x.Outputs {
			if o == nil {
				continue
			}
			if o.IsOutput() {
				own = -1
			}
			for _, c := range o.Consumers {
				oc := l.owner[c]
				switch {
				case own == -2:
					own = oc
				case own != oc:
					own = -1
				}
				if b, ok := l.branch[c]; ok && oc == own && (br < 0 || (b >= 0 && b < br)) {
					br = b
				}
			}
		}
		if own == -2 {
			own = -1
		}
		l.owner[x] = own
		if own >= 0 {
			l.branch[x] = br
		}
	}
	l.claimInputCasts()
	l.nodes = make([][]*graph.Node, l.numLayers)
	for _, x := range order {
		if k := l.owner[x]; k >= 0 {
			l.nodes[k] = append(l.nodes[k], x)
		}
	}
	if l.fused {
		l.findInputNorms()
	}
	if err := l.checkSeparable(); err != nil {
		return err
	}
	l.findKV()
	l.hashLayers()
	if err := l.checkCrossAttention(); err != nil {
		return err
	}
	params, err := l.params()
	if err != nil {
		return err
	}
	if err := l.compare(params); err != nil {
		return err
	}
	l.describe(params)
	return nil
}

// claimInputCasts gives a layer the Cast that converts one of its graph
// inputs (float16.py's NAME_fp16 Cast of a float32 past_key_values input in
// transformers.js's model_fp16) when only that layer's nodes and Shape nodes
// read the result: the shared Shape reads the past length from layer 0's
// cache, as the float32 export reads it from the input itself, so the Cast
// is layer 0's as in the other layers (inputCast marks it).
func (l *layering) claimInputCasts() {
	for _, x := range l.flow.a.order {
		if l.owner[x] >= 0 || x.Op != "Cast" || len(x.Inputs) != 1 || x.Inputs[0] == nil || !x.Inputs[0].Input ||
			x.Inputs[0].Init != nil || len(x.Outputs) != 1 || x.Outputs[0] == nil || x.Outputs[0].IsOutput() {
			continue
		}
		own, br := -1, -1
		for _, c := range x.Outputs[0].Consumers {
			k := l.owner[c]
			switch {
			case k < 0 && c.Op == "Shape":
			case k >= 0 && (own == -1 || own == k):
				own = k
				if b, ok := l.branch[c]; ok && b >= 0 && (br < 0 || b < br) {
					br = b
				}
			default:
				own = -2
			}
			if own == -2 {
				break
			}
		}
		if own < 0 {
			continue
		}
		l.owner[x], l.branch[x] = own, br
		if l.inputCast == nil {
			l.inputCast = map[*graph.Node]bool{}
		}
		l.inputCast[x] = true
	}
}

// checkSeparable: a layer reads only its input, its own values, shared values and
// constants; shared nodes read only stream values of the layers (and the
// shapes of their input Casts, claimInputCasts).
func (l *layering) checkSeparable() error {
	hidden := map[*graph.Value]bool{}
	for _, v := range l.input {
		hidden[v] = true
	}
	for _, v := range l.output {
		hidden[v] = true
	}
	for k := 0; l.fused && k < l.numLayers; k++ {
		hidden[l.branchOut(k)] = true
	}
	for _, x := range l.flow.a.order {
		k := l.owner[x]
		for _, v := range append(slices.Clip(x.Inputs), x.Implicit...) {
			if v == nil || v.Producer == nil {
				continue
			}
			j := l.owner[v.Producer]
			switch {
			case j < 0 || j == k:
			case k >= 0 && v == l.input[k]:
			case k >= 0 && l.fused && v == l.branchIn(k):
			case k < 0 && hidden[v]:
			case k < 0 && x.Op == "Shape" && l.inputCast[v.Producer]:
			case k >= 0:
				return notDecoder(k, "layer %d reads %q, computed inside layer %d (by %s): the layers are not separable", k, v.Name, j, v.Producer)
			default:
				return notDecoder(j, "%s, outside the layers, reads %q computed inside layer %d: the layers are not separable", x, v.Name, j)
			}
		}
	}
	return nil
}

// findKV: per-layer graph inputs (read by this layer's nodes and no other layer's)
// and outputs (produced by this layer's nodes).
func (l *layering) findKV() {
	g := l.flow.a.g
	l.pastInputs = make([]map[*graph.Value]bool, l.numLayers)
	for k := range l.pastInputs {
		l.pastInputs[k] = map[*graph.Value]bool{}
	}
	for _, v := range g.Inputs {
		if v.Init != nil {
			continue
		}
		layer := -2
		for _, c := range v.Consumers {
			k := l.owner[c]
			if k < 0 {
				continue
			}
			if layer == -2 {
				layer = k
			} else if layer != k {
				layer = -1
			}
		}
		if layer >= 0 {
			l.pastInputs[layer][v] = true
		}
	}
}

// checkCrossAttention refuses layers whose projections read values that do not
// come from the layer's input (cross-attention to an encoder's output).
func (l *layering) checkCrossAttention() error {
	for k := 0; k < l.numLayers; k++ {
		tainted := map[*graph.Value]bool{l.input[k]: true}
		if l.fused && k > 0 {
			tainted[l.branchIn(k)] = true
		}
		for _, x := range l.nodes[k] {
			if _, data, ok := isProjection(x); ok && !tainted[data] {
				return notDecoder(k, "layer %d: projection %s reads %q, which does not depend on the layer's input %q (cross-attention to an encoder?); only decoder-only models are supported", k, x, data.Name, l.input[k].Name)
			}
			if shapeOps[x.Op] {
				continue
			}
			markOutputs(tainted, x)
		}
	}
	return nil
}

// reachable returns the values of layer k computed from v.
func (l *layering) reachable(k int, v *graph.Value) map[*graph.Value]bool {
	reach := map[*graph.Value]bool{v: true}
	for _, x := range l.nodes[k] {
		markOutputs(reach, x)
	}
	return reach
}

// isWeightChain reports whether x is an Identity, Transpose or Cast of a constant
// (a weight read transposed, converted or deduplicated).
func isWeightChain(x *graph.Node) bool {
	if !weightChainOps[x.Op] || x.Domain != "" || len(x.Inputs) == 0 {
		return false
	}
	t, _ := resolveConst(x.Inputs[0])
	return t != nil
}

// branchIn and branchOut are the residual branches (Stack.Branch) entering and
// leaving layer k when the adds are fused; branchIn(0) is nil.
func (l *layering) branchIn(k int) *graph.Value {
	if k == 0 {
		return nil
	}
	return l.flow.a.g.Value(l.stack.Branch[k])
}

func (l *layering) branchOut(k int) *graph.Value {
	return l.flow.a.g.Value(l.stack.Branch[k+1])
}

// findInputNorms records each layer's input norm: the boundary skip norm, or
// for layer 0 the norm of its nodes that reads h_0.
func (l *layering) findInputNorms() {
	l.inNorm = make([]*graph.Node, l.numLayers)
	for k := 1; k < l.numLayers; k++ {
		l.inNorm[k] = l.flow.chain[l.firstStep+k*l.period]
	}
	for _, x := range l.nodes[0] {
		if isNormOp(x) && !isSkipNorm(x) && len(x.Inputs) > 0 && x.Inputs[0] == l.input[0] {
			l.inNorm[0] = x
			break
		}
	}
}

// isInNorm reports whether x is layer k's input norm in a fused layout.
func (l *layering) isInNorm(k int, x *graph.Node) bool {
	return l.fused && l.inNorm[k] == x
}

// canonicalInput is input j of x as the alignment sees it: a fused input
// norm's scale is its input 2 (after the stream and the branch), a plain
// norm's its input 1, and layer 0's plain norm aligns with the others' skip norms.
func (l *layering) canonicalInput(k int, x *graph.Node, j int) int {
	if l.isInNorm(k, x) && isSkipNorm(x) {
		return j - 1
	}
	return j
}

// opName is x's op for the layer signature: the input norm of a fused layout
// has one name whether it adds a branch (skip norm) or not (layer 0's).
func (l *layering) opName(k int, x *graph.Node) string {
	if l.isInNorm(k, x) {
		return "input-norm"
	}
	return x.Op
}

// markOutputs marks node x's outputs in marked when one of its inputs is
// marked (one step of a forward reachability walk).
func markOutputs(marked map[*graph.Value]bool, x *graph.Node) {
	for _, v := range x.Inputs {
		if marked[v] {
			for _, o := range x.Outputs {
				if o != nil {
					marked[o] = true
				}
			}
			return
		}
	}
}
