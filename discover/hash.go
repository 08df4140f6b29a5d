package discover

// This file computes the name-free structural hashes that align the layers:
// a global hash for shared values and, per layer, an upstream and downstream
// key for every node.

import (
	"math"
	"slices"
	"sort"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func mix(h, x uint64) uint64 {
	h ^= x
	h *= fnvPrime
	h ^= h >> 31
	h *= 0x9e3779b97f4a7c15
	return h ^ h>>29
}

func hstr(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func hashBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// contentLimit bounds the number of elements whose values enter structural hashes.
const contentLimit = 64

func tensorHash(t *pb.TensorProto, content bool) uint64 {
	h := mix(hstr("T"), uint64(t.GetDataType()))
	h = mix(h, uint64(len(t.Dims)))
	for _, d := range t.Dims {
		h = mix(h, uint64(d))
	}
	if content && graph.NumElements(t.Dims) <= contentLimit {
		if b, ok := graph.TensorBytes(t); ok {
			h = hashBytes(h, b)
		}
	}
	return h
}

func attrHash(x *graph.Node) uint64 {
	h := hstr(x.Op + "\x00" + x.Domain)
	attrs := slices.Clone(x.Attrs)
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].GetName() < attrs[j].GetName() })
	for _, a := range attrs {
		h = mix(h, hstr(a.GetName()))
		h = mix(h, uint64(a.GetType()))
		switch a.GetType() {
		case pb.AttributeProto_INT:
			h = mix(h, uint64(a.GetI()))
		case pb.AttributeProto_FLOAT:
			h = mix(h, uint64(math.Float32bits(a.GetF())))
		case pb.AttributeProto_STRING:
			h = mix(h, hstr(string(a.GetS())))
		case pb.AttributeProto_INTS:
			for _, v := range a.GetInts() {
				h = mix(h, uint64(v))
			}
		case pb.AttributeProto_FLOATS:
			for _, v := range a.GetFloats() {
				h = mix(h, uint64(math.Float32bits(v)))
			}
		case pb.AttributeProto_STRINGS:
			for _, v := range a.GetStrings() {
				h = mix(h, hstr(string(v)))
			}
		case pb.AttributeProto_TENSOR:
			h = mix(h, tensorHash(a.GetT(), true))
		case pb.AttributeProto_GRAPH:
			for _, n := range a.GetG().GetNode() {
				h = mix(h, hstr(n.GetOpType()))
			}
		}
	}
	return h
}

// isParamTensor: float tensors of two or more elements are parameters; scalars
// (eps, scale) and integer tensors are structure.
func isParamTensor(t *pb.TensorProto) bool {
	return isFloat(t) && graph.NumElements(t.Dims) >= 2
}

func constHash(t *pb.TensorProto) uint64 {
	if isParamTensor(t) {
		return mix(hstr("P"), tensorHash(t, false))
	}
	return mix(hstr("C"), tensorHash(t, true))
}

// globalHash is a name-free structural hash of v in the whole graph, used for
// values the layers share.
func (l *layering) globalHash(v *graph.Value) uint64 {
	if v == nil {
		return 0
	}
	if h, ok := l.globalValueHash[v]; ok {
		return h
	}
	var h uint64
	switch {
	case graph.Constant(v) != nil:
		h = constHash(graph.Constant(v))
	case v.Init != nil:
		h = constHash(v.Init)
	case v.Input:
		h = mix(hstr("GIN"), uint64(slices.Index(l.flow.a.g.Inputs, v)))
	case v.Producer != nil:
		p := v.Producer
		nh, ok := l.globalNodeHash[p]
		if !ok {
			nh = attrHash(p)
			for _, in := range p.Inputs {
				nh = mix(nh, l.globalHash(in))
			}
			l.globalNodeHash[p] = nh
		}
		h = mix(nh, uint64(slices.Index(p.Outputs, v)))
	default:
		h = hstr("undefined")
	}
	l.globalValueHash[v] = h
	return h
}

// hashLayers computes, for every node of every layer, a key from its position in
// the layer's computation: upstream (what it computes from the layer's input) and
// downstream (how its result reaches the layer's output). Identity nodes are
// transparent, so deduplicated weights read through them hash like direct ones.
func (l *layering) hashLayers() {
	l.nodeKey = make([]map[*graph.Node]uint64, l.numLayers)
	l.nodeDepth = make([]map[*graph.Node]int, l.numLayers)
	l.upHash = make([]map[*graph.Value]uint64, l.numLayers)
	l.downHash = make([]map[*graph.Value]uint64, l.numLayers)
	hIn, hOut, hX, hGOut := hstr("IN"), hstr("OUT"), hstr("X"), hstr("GOUT")
	for k := 0; k < l.numLayers; k++ {
		up := map[*graph.Value]uint64{}
		vdepth := map[*graph.Value]int{}
		upNode := map[*graph.Node]uint64{}
		ndepth := map[*graph.Node]int{}
		upVal := func(v *graph.Value) uint64 {
			switch {
			case v == nil:
				return 0
			case v == l.input[k]:
				return hIn
			}
			if h, ok := up[v]; ok {
				return h
			}
			// A parameter read directly or through Identity/Transpose/Cast nodes hashes
			// the same whether those nodes are the layer's own or shared.
			if t, _, via := resolveConstValue(v); t != nil && (isParamTensor(t) || readAsQuantWeight(v) || isDynamicQuantScale(v)) {
				h := mix(hstr("P"), tensorHash(t, false))
				for _, n := range via {
					if n.Op != "Identity" {
						h = mix(h, attrHash(n))
					}
				}
				return h
			}
			if t := graph.Constant(v); t != nil && (v.Producer == nil || l.owner[v.Producer] != k) {
				return constHash(t)
			}
			if v.Init != nil {
				return constHash(v.Init)
			}
			if v.Input && l.pastInputs[k][v] {
				return mix(hstr("LIN"), infoHash(v.Info))
			}
			return mix(hstr("S"), l.globalHash(v))
		}
		for _, x := range l.nodes[k] {
			d := 0
			for _, v := range x.Inputs {
				if dv, ok := vdepth[v]; ok && dv+1 > d {
					d = dv + 1
				}
			}
			if isWeightChain(x) {
				continue // its reader hashes the parameter through it
			}
			if x.Op == "Identity" && len(x.Inputs) == 1 && x.Outputs[0] != nil {
				up[x.Outputs[0]] = upVal(x.Inputs[0])
				if dv, ok := vdepth[x.Inputs[0]]; ok {
					vdepth[x.Outputs[0]] = dv
				}
				continue
			}
			if l.isInNorm(k, x) {
				// The input norm of a fused layout: the stream (and the branch it
				// adds) in, the scale and shift; its sum output is the stream.
				h := inNormHash(x, hIn)
				s := normScaleInput(x)
				for _, v := range x.Inputs[s:min(len(x.Inputs), s+2)] { // scale and shift; a skip norm's bias is the layer below's
					h = mix(h, upVal(v))
				}
				upNode[x], ndepth[x] = h, 0
				up[x.Outputs[0]], vdepth[x.Outputs[0]] = mix(h, 0), 0
				if sum := skipSum(x); isSkipNorm(x) && sum != nil {
					up[sum], vdepth[sum] = hIn, 0
				}
				continue
			}
			h := attrHash(x)
			for _, v := range x.Inputs {
				h = mix(h, upVal(v))
			}
			upNode[x] = h
			ndepth[x] = d
			for j, o := range x.Outputs {
				if o != nil {
					up[o] = mix(h, uint64(j))
					vdepth[o] = d
				}
			}
		}
		vdepth[l.input[k]] = 0
		down := map[*graph.Value]uint64{}
		downNode := map[*graph.Node]uint64{}
		var downVal func(v *graph.Value) uint64
		downVal = func(v *graph.Value) uint64 {
			if h, ok := down[v]; ok {
				return h
			}
			var uses []uint64
			if v == l.output[k] {
				uses = append(uses, hOut)
			} else {
				for _, c := range v.Consumers {
					if l.owner[c] != k {
						uses = append(uses, hX)
						continue
					}
					if c.Op == "Identity" && len(c.Inputs) == 1 && c.Outputs[0] != nil {
						uses = append(uses, downVal(c.Outputs[0]))
						continue
					}
					for j, in := range c.Inputs {
						if in == v {
							uses = append(uses, mix(downNode[c], uint64(j)))
						}
					}
					if slices.Contains(c.Implicit, v) {
						uses = append(uses, mix(downNode[c], hstr("implicit")))
					}
				}
			}
			if v.IsOutput() {
				uses = append(uses, hGOut)
			}
			slices.Sort(uses)
			h := hstr("D")
			for _, u := range uses {
				h = mix(h, u)
			}
			down[v] = h
			return h
		}
		for i := len(l.nodes[k]) - 1; i >= 0; i-- {
			x := l.nodes[k][i]
			if x.Op == "Identity" {
				continue
			}
			if l.isInNorm(k, x) {
				downNode[x] = mix(inNormHash(x, hIn), mix(0, downVal(x.Outputs[0])))
				continue
			}
			h := attrHash(x)
			for j, o := range x.Outputs {
				if o != nil {
					h = mix(h, mix(uint64(j), downVal(o)))
				}
			}
			downNode[x] = h
		}
		keys := map[*graph.Node]uint64{}
		for x, u := range upNode {
			keys[x] = mix(u, downNode[x])
		}
		l.nodeKey[k] = keys
		l.nodeDepth[k] = ndepth
		l.upHash[k] = up
		for v := range l.pastInputs[k] {
			downVal(v)
		}
		l.downHash[k] = down
	}
}

func infoHash(vi *pb.ValueInfoProto) uint64 {
	tt := vi.GetType().GetTensorType()
	h := mix(hstr("info"), uint64(tt.GetElemType()))
	return mix(h, uint64(len(tt.GetShape().GetDim())))
}

// readAsQuantWeight reports whether a quantized projection reads v as a part
// of its weight (packed values, scales, zero points), which are parameters
// whatever their type.
func readAsQuantWeight(v *graph.Value) bool {
	for _, c := range v.Consumers {
		for j, in := range c.Inputs {
			if in == v && isQuantWeightInput(c, j) {
				return true
			}
		}
	}
	return false
}

// inNormHash is the structural hash of a fused layout's input norm: its
// kind (plain or layer norm) and epsilon, not whether it adds a branch.
func inNormHash(x *graph.Node, in uint64) uint64 {
	kind := "rms"
	if x.Op == "LayerNormalization" || x.Op == "SkipLayerNormalization" {
		kind = "ln"
	}
	h := mix(hstr("INNORM:"+kind), in)
	for _, a := range x.Attrs {
		if a.GetName() == "epsilon" {
			h = mix(h, uint64(math.Float32bits(a.GetF())))
		}
	}
	return h
}

// normScaleInput is the input position of a norm op's scale.
func normScaleInput(x *graph.Node) int {
	if isSkipNorm(x) {
		return 2
	}
	return 1
}

// isDynamicQuantScale reports whether v is a per-tensor weight scale that
// multiplies the scale of a DynamicQuantizeLinear (onnxruntime's IntegerOps
// quantizer: Mul(A_scale, B_scale) after MatMulInteger): a weight's value,
// not structure.
func isDynamicQuantScale(v *graph.Value) bool {
	for _, c := range v.Consumers {
		if c.Op != "Mul" || len(c.Inputs) != 2 {
			continue
		}
		for _, in := range c.Inputs {
			if in != nil && in != v && in.Producer != nil && in.Producer.Op == "DynamicQuantizeLinear" && len(in.Producer.Outputs) > 1 && in.Producer.Outputs[1] == in {
				return true
			}
		}
	}
	return false
}
