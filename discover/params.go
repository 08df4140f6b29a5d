package discover

// This file collects each layer's parameter tensors, says what role each plays
// (projection weight or bias, norm scale or shift) and orders them into slots.

import (
	"math"
	"slices"
	"sort"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// paramUse is one place where a layer reads a parameter.
type paramUse struct {
	reader *graph.Node // the layer node reading the tensor
	input  int         // the input position of reader that reads it
	// through are the Identity, Transpose or Cast nodes between the tensor and
	// reader, from the tensor's side.
	through    []*graph.Node
	key        uint64 // reader's alignment key and input position
	kind       ParamKind
	transposed bool // a projection weight read as [out, in]
}

// layerParam is one parameter tensor of a layer, with all its uses.
type layerParam struct {
	value  *graph.Value // the initializer or Constant output holding it
	tensor *pb.TensorProto
	uses   []paramUse
	kind   ParamKind
	key    uint64 // the tensor's shape and its uses' keys: equal for the same slot in every layer
	// branch, depth and firstPos order the slots: the lowest residual branch,
	// depth and topological position among the tensor's readers.
	branch, depth, firstPos int
	transposed              bool
}

// params collects and orders each layer's parameters.
func (l *layering) params() ([][]*layerParam, error) {
	out := make([][]*layerParam, l.numLayers)
	for k := 0; k < l.numLayers; k++ {
		byValue := map[*graph.Value]*layerParam{}
		var list []*layerParam
		for _, x := range l.nodes[k] {
			if isWeightChain(x) {
				continue // its reader records the use
			}
			for j, v := range x.Inputs {
				if v == nil || (j == 4 && k > 0 && l.isInNorm(k, x)) {
					continue // a fused input norm's bias belongs to the layer below (boundaryBias)
				}
				t, cv, via := resolveConstValue(v)
				if t == nil || (!isParamTensor(t) && !isQuantWeightInput(x, j) && !isDynamicQuantScale(v)) {
					continue
				}
				kind, trans := classify(x, j, via)
				u := paramUse{reader: x, input: j, through: via, kind: kind, transposed: trans}
				u.key = mix(l.nodeKey[k][x], uint64(l.canonicalInput(k, x, j)))
				for _, n := range via {
					if n.Op != "Identity" {
						u.key = mix(u.key, attrHash(n))
					}
				}
				lp := byValue[cv]
				if lp == nil {
					lp = &layerParam{value: cv, tensor: t, kind: kind, transposed: trans, branch: -1, depth: math.MaxInt, firstPos: math.MaxInt}
					byValue[cv] = lp
					list = append(list, lp)
				}
				lp.uses = append(lp.uses, u)
				if b, ok := l.branch[x]; ok && b >= 0 && (lp.branch < 0 || b < lp.branch) {
					lp.branch = b
				}
				if d := l.nodeDepth[k][x]; d < lp.depth {
					lp.depth = d
				}
				if p := l.flow.a.pos[x]; p < lp.firstPos {
					lp.firstPos = p
				}
			}
		}
		if lp := l.boundaryBias(k); lp != nil {
			list = append(list, lp)
		}
		for _, lp := range list {
			keys := make([]uint64, len(lp.uses))
			for i, u := range lp.uses {
				keys[i] = u.key
				if u.kind != Other && lp.kind == Other {
					lp.kind, lp.transposed = u.kind, u.transposed
				}
			}
			slices.Sort(keys)
			h := tensorHash(lp.tensor, false)
			for _, x := range keys {
				h = mix(h, x)
			}
			lp.key = h
		}
		sort.SliceStable(list, func(i, j int) bool {
			a, b := list[i], list[j]
			if a.branch != b.branch {
				return a.branch < b.branch
			}
			if a.depth != b.depth {
				return a.depth < b.depth
			}
			if a.kind != b.kind {
				return kindOrder[a.kind] < kindOrder[b.kind]
			}
			if a.key != b.key {
				return a.key < b.key
			}
			return a.firstPos < b.firstPos
		})
		out[k] = list
	}
	return out, nil
}

// boundaryBias is layer k's last branch bias on a fused stack whose
// boundary norms add one (Stack.BranchBias): the next layer's input norm (or
// the final norm) reads it, but it is the bias of layer k's projection that
// writes the branch, so it is layer k's slot and goes with layer k's
// merges. Nil when the boundary norm adds no bias.
func (l *layering) boundaryBias(k int) *layerParam {
	if !l.fused {
		return nil
	}
	nb := l.flow.chain[l.firstStep+(k+1)*l.period]
	b := skipBias(nb)
	if b == nil {
		return nil
	}
	t, cv, via := resolveConstValue(b)
	if t == nil {
		return nil
	}
	u := paramUse{reader: nb, input: 4, through: via, kind: ProjBias, key: mix(boundaryBiasKey, 4)}
	return &layerParam{value: cv, tensor: t, kind: ProjBias, uses: []paramUse{u},
		branch: l.period - 1, depth: math.MaxInt - 1, firstPos: l.flow.a.pos[nb]}
}

// boundaryBiasKey stands for the boundary norm in a boundary bias's use key
// (that node is not one of the layer's own, which have alignment keys).
const boundaryBiasKey = 0x62726e6368626961

// kindOrder orders slots of equal depth: a norm's scale before its shift, a
// projection's weight before its bias.
var kindOrder = map[ParamKind]int{NormWeight: 0, NormBias: 1, ProjWeight: 2, ProjBias: 3, Other: 4}

// classify says what role the tensor read at input j of x plays.
func classify(x *graph.Node, j int, via []*graph.Node) (ParamKind, bool) {
	if isQuantWeightInput(x, j) || (x.Op == "Mul" && isDynamicQuantScale(x.Inputs[j]) && int8ScaleOf(x) != nil) {
		return ProjWeight, false
	}
	if wIn, _, ok := isProjection(x); ok {
		if j == wIn {
			trans := x.Op == "Gemm" && x.AttrInt("transB", 0) != 0
			for _, n := range via {
				if n.Op == "Transpose" {
					trans = !trans
				}
			}
			return ProjWeight, trans
		}
	}
	if x.Domain != "" && x.Domain != "com.microsoft" {
		return Other, false
	}
	switch x.Op {
	case "Gemm":
		if j == 2 {
			return ProjBias, false
		}
	case "LayerNormalization", "SimplifiedLayerNormalization", "RMSNormalization":
		switch j {
		case 1:
			return NormWeight, false
		case 2:
			return NormBias, false
		}
	case "SkipLayerNormalization", "SkipSimplifiedLayerNormalization":
		switch j {
		case 2:
			return NormWeight, false
		case 3:
			return NormBias, false
		case 4: // the skip branch's projection bias, folded into the norm
			return ProjBias, false
		}
	case "Attention":
		if j == 2 && isPackedAttention(x) {
			return ProjBias, false
		}
	case "FastGelu", "BiasGelu":
		if j == 1 { // the bias of the projection before, folded in (FusionBiasGelu)
			return ProjBias, false
		}
	case "Add":
		other := throughIdentity(otherInput(x, j))
		if other == nil {
			break
		}
		if p := other.Producer; p != nil {
			if isProjectionNode(p) {
				return ProjBias, false
			}
			if p.Op == "Mul" && readsNormWeight(p) {
				return NormBias, false
			}
		}
	case "Mul":
		if other := otherInput(x, j); other != nil && normalized(other, 6) {
			return NormWeight, false
		}
	}
	return Other, false
}

func otherInput(x *graph.Node, j int) *graph.Value {
	if len(x.Inputs) != 2 {
		return nil
	}
	return x.Inputs[1-j]
}

func throughIdentity(v *graph.Value) *graph.Value {
	for v != nil && v.Producer != nil && v.Producer.Op == "Identity" && len(v.Producer.Inputs) == 1 {
		v = v.Producer.Inputs[0]
	}
	return v
}

// readsNormWeight: the Mul x scales a normalized value by a parameter tensor.
func readsNormWeight(x *graph.Node) bool {
	for j, v := range x.Inputs {
		if t, _ := resolveConst(v); t != nil && isParamTensor(t) {
			if o := otherInput(x, j); o != nil && normalized(o, 6) {
				return true
			}
		}
	}
	return false
}

// normalized reports whether v comes, within depth nodes, from a normalization:
// a mean reduction and a square root (or reciprocal, or power), as RMSNorm and
// LayerNorm decompose.
func normalized(v *graph.Value, depth int) bool {
	var mean, root bool
	seen := map[*graph.Node]bool{}
	var walk func(v *graph.Value, d int)
	walk = func(v *graph.Value, d int) {
		if v == nil || d == 0 || v.Producer == nil || seen[v.Producer] {
			return
		}
		p := v.Producer
		seen[p] = true
		switch p.Op {
		case "ReduceMean", "ReduceSumSquare", "ReduceL2":
			mean = true
		case "Sqrt", "Reciprocal", "Pow", "Rsqrt":
			root = true
		case "LayerNormalization", "SimplifiedLayerNormalization", "RMSNormalization":
			mean, root = true, true
		}
		for _, in := range p.Inputs {
			walk(in, d-1)
		}
	}
	walk(v, depth)
	return mean && root
}
