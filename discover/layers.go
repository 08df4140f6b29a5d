package discover

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// layering assigns every node to a layer or to the shared part, and aligns the
// layers' parameters.
type layering struct {
	f            *flow
	s            *Stack
	first, p, nl int
	owner        map[*graph.Node]int // layer index, or -1 for shared
	branch       map[*graph.Node]int // residual branch within the layer, -1 unknown
	nodes        [][]*graph.Node     // per layer, topological order
	in, out      []*graph.Value      // h_i, h_{i+1}
	past         []map[*graph.Value]bool
	gh           map[*graph.Value]uint64
	ghn          map[*graph.Node]uint64

	// per layer results of hashing
	keys  []map[*graph.Node]uint64
	depth []map[*graph.Node]int
	upv   []map[*graph.Value]uint64
	downv []map[*graph.Value]uint64
}

func newLayering(f *flow, s *Stack, first, p, nl int) *layering {
	return &layering{f: f, s: s, first: first, p: p, nl: nl,
		owner: map[*graph.Node]int{}, branch: map[*graph.Node]int{},
		gh: map[*graph.Value]uint64{}, ghn: map[*graph.Node]uint64{}}
}

func (l *layering) build() error {
	f := l.f
	g := f.a.g
	for i := 0; i < l.nl; i++ {
		l.in = append(l.in, g.Value(l.s.Hidden[i]))
		l.out = append(l.out, g.Value(l.s.Hidden[i+1]))
	}
	// Data nodes: by the step their dominator says.
	for _, x := range f.dnodes {
		s := f.seg[x]
		if s >= l.first && s < l.first+l.nl*l.p {
			l.owner[x] = (s - l.first) / l.p
			l.branch[x] = (s - l.first) % l.p
		} else {
			l.owner[x] = -1
		}
	}
	// What h_0 is computed from (the embedding lookup and its inputs) is shared.
	stack := []*graph.Value{l.in[0]}
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
	l.nodes = make([][]*graph.Node, l.nl)
	for _, x := range order {
		if k := l.owner[x]; k >= 0 {
			l.nodes[k] = append(l.nodes[k], x)
		}
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

// checkSeparable: a layer reads only its input, its own values, shared values and
// constants; shared nodes read only stream values of the layers.
func (l *layering) checkSeparable() error {
	hidden := map[*graph.Value]bool{}
	for _, v := range l.in {
		hidden[v] = true
	}
	for _, v := range l.out {
		hidden[v] = true
	}
	for _, x := range l.f.a.order {
		k := l.owner[x]
		for _, v := range append(slices.Clip(x.Inputs), x.Implicit...) {
			if v == nil || v.Producer == nil {
				continue
			}
			j := l.owner[v.Producer]
			switch {
			case j < 0 || j == k:
			case k >= 0 && v == l.in[k]:
			case k < 0 && hidden[v]:
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
	g := l.f.a.g
	l.past = make([]map[*graph.Value]bool, l.nl)
	for k := range l.past {
		l.past[k] = map[*graph.Value]bool{}
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
			l.past[layer][v] = true
		}
	}
}

// --- hashing -----------------------------------------------------------------

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
	if h, ok := l.gh[v]; ok {
		return h
	}
	var h uint64
	switch {
	case graph.Constant(v) != nil:
		h = constHash(graph.Constant(v))
	case v.Init != nil:
		h = constHash(v.Init)
	case v.Input:
		h = mix(hstr("GIN"), uint64(slices.Index(l.f.a.g.Inputs, v)))
	case v.Producer != nil:
		p := v.Producer
		nh, ok := l.ghn[p]
		if !ok {
			nh = attrHash(p)
			for _, in := range p.Inputs {
				nh = mix(nh, l.globalHash(in))
			}
			l.ghn[p] = nh
		}
		h = mix(nh, uint64(slices.Index(p.Outputs, v)))
	default:
		h = hstr("undefined")
	}
	l.gh[v] = h
	return h
}

// hashLayers computes, for every node of every layer, a key from its position in
// the layer's computation: upstream (what it computes from the layer's input) and
// downstream (how its result reaches the layer's output). Identity nodes are
// transparent, so deduplicated weights read through them hash like direct ones.
func (l *layering) hashLayers() {
	l.keys = make([]map[*graph.Node]uint64, l.nl)
	l.depth = make([]map[*graph.Node]int, l.nl)
	l.upv = make([]map[*graph.Value]uint64, l.nl)
	l.downv = make([]map[*graph.Value]uint64, l.nl)
	hIn, hOut, hX, hGOut := hstr("IN"), hstr("OUT"), hstr("X"), hstr("GOUT")
	for k := 0; k < l.nl; k++ {
		up := map[*graph.Value]uint64{}
		vdepth := map[*graph.Value]int{}
		upNode := map[*graph.Node]uint64{}
		ndepth := map[*graph.Node]int{}
		var upVal func(v *graph.Value) uint64
		upVal = func(v *graph.Value) uint64 {
			switch {
			case v == nil:
				return 0
			case v == l.in[k]:
				return hIn
			}
			if h, ok := up[v]; ok {
				return h
			}
			// A parameter read directly or through Identity/Transpose/Cast nodes hashes
			// the same whether those nodes are the layer's own or shared.
			if t, _, via := resolveConstValue(v); t != nil && isParamTensor(t) {
				h := constHash(t)
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
			if v.Input && l.past[k][v] {
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
		vdepth[l.in[k]] = 0
		down := map[*graph.Value]uint64{}
		downNode := map[*graph.Node]uint64{}
		var downVal func(v *graph.Value) uint64
		downVal = func(v *graph.Value) uint64 {
			if h, ok := down[v]; ok {
				return h
			}
			var uses []uint64
			if v == l.out[k] {
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
		l.keys[k] = keys
		l.depth[k] = ndepth
		l.upv[k] = up
		for v := range l.past[k] {
			downVal(v)
		}
		l.downv[k] = down
	}
}

func infoHash(vi *pb.ValueInfoProto) uint64 {
	tt := vi.GetType().GetTensorType()
	h := mix(hstr("info"), uint64(tt.GetElemType()))
	return mix(h, uint64(len(tt.GetShape().GetDim())))
}

// checkCrossAttention refuses layers whose projections read values that do not
// come from the layer's input (cross-attention to an encoder's output).
func (l *layering) checkCrossAttention() error {
	for k := 0; k < l.nl; k++ {
		tainted := map[*graph.Value]bool{l.in[k]: true}
		for _, x := range l.nodes[k] {
			if _, data, ok := isProjection(x); ok && !tainted[data] {
				return notDecoder(k, "layer %d: projection %s reads %q, which does not depend on the layer's input %q (cross-attention to an encoder?); only decoder-only models are supported", k, x, data.Name, l.in[k].Name)
			}
			if shapeOps[x.Op] {
				continue
			}
			for _, v := range x.Inputs {
				if tainted[v] {
					for _, o := range x.Outputs {
						if o != nil {
							tainted[o] = true
						}
					}
					break
				}
			}
		}
	}
	return nil
}

// --- parameters ----------------------------------------------------------------

type paramUse struct {
	node  *graph.Node
	input int
	via   []*graph.Node
	key   uint64
	kind  ParamKind
	trans bool
}

type layerParam struct {
	value  *graph.Value
	tensor *pb.TensorProto
	uses   []paramUse
	kind   ParamKind
	key    uint64
	branch int
	depth  int
	first  int // topological position of the first use
	trans  bool
}

// params collects and orders each layer's parameters.
func (l *layering) params() ([][]*layerParam, error) {
	out := make([][]*layerParam, l.nl)
	for k := 0; k < l.nl; k++ {
		byValue := map[*graph.Value]*layerParam{}
		var list []*layerParam
		for _, x := range l.nodes[k] {
			if isWeightChain(x) {
				continue // its reader records the use
			}
			for j, v := range x.Inputs {
				if v == nil {
					continue
				}
				t, cv, via := resolveConstValue(v)
				if t == nil || !isParamTensor(t) {
					continue
				}
				kind, trans := classify(x, j, via)
				u := paramUse{node: x, input: j, via: via, kind: kind, trans: trans}
				u.key = mix(l.keys[k][x], uint64(j))
				for _, n := range via {
					if n.Op != "Identity" {
						u.key = mix(u.key, attrHash(n))
					}
				}
				lp := byValue[cv]
				if lp == nil {
					lp = &layerParam{value: cv, tensor: t, kind: kind, trans: trans, branch: -1, depth: math.MaxInt, first: math.MaxInt}
					byValue[cv] = lp
					list = append(list, lp)
				}
				lp.uses = append(lp.uses, u)
				if b, ok := l.branch[x]; ok && b >= 0 && (lp.branch < 0 || b < lp.branch) {
					lp.branch = b
				}
				if d := l.depth[k][x]; d < lp.depth {
					lp.depth = d
				}
				if p := l.f.a.pos[x]; p < lp.first {
					lp.first = p
				}
			}
		}
		for _, lp := range list {
			keys := make([]uint64, len(lp.uses))
			for i, u := range lp.uses {
				keys[i] = u.key
				if u.kind != Other && lp.kind == Other {
					lp.kind, lp.trans = u.kind, u.trans
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
			return a.first < b.first
		})
		out[k] = list
	}
	return out, nil
}

// kindOrder orders slots of equal depth: a norm's scale before its shift, a
// projection's weight before its bias.
var kindOrder = map[ParamKind]int{NormWeight: 0, NormBias: 1, ProjWeight: 2, ProjBias: 3, Other: 4}

// classify says what role the tensor read at input j of x plays.
func classify(x *graph.Node, j int, via []*graph.Node) (ParamKind, bool) {
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

// --- comparing layers --------------------------------------------------------

type layerSig struct {
	ops    map[string]int
	params []uint64
	past   int
	pres   int
}

func (l *layering) signature(k int, params []*layerParam) layerSig {
	s := layerSig{ops: map[string]int{}, past: len(l.past[k])}
	for _, x := range l.nodes[k] {
		if x.Op != "Identity" && !isWeightChain(x) {
			s.ops[x.Op]++
		}
		for _, o := range x.Outputs {
			if o != nil && o.IsOutput() {
				s.pres++
			}
		}
	}
	for _, p := range params {
		s.params = append(s.params, p.key)
	}
	return s
}

func (a layerSig) equal(b layerSig) bool {
	if len(a.ops) != len(b.ops) || a.past != b.past || a.pres != b.pres || !slices.Equal(a.params, b.params) {
		return false
	}
	for op, n := range a.ops {
		if b.ops[op] != n {
			return false
		}
	}
	return true
}

// compare checks that all layers have the same structure and parameter slots, and
// says which layer differs from the others and how.
func (l *layering) compare(params [][]*layerParam) error {
	sigs := make([]layerSig, l.nl)
	for k := range sigs {
		sigs[k] = l.signature(k, params[k])
	}
	// The majority signature (ties: the earliest layer's).
	ref, best := 0, 0
	for k := range sigs {
		n := 0
		for j := range sigs {
			if sigs[j].equal(sigs[k]) {
				n++
			}
		}
		if n > best {
			ref, best = k, n
		}
	}
	if best == l.nl {
		return nil
	}
	var odd []int
	for k := range sigs {
		if !sigs[k].equal(sigs[ref]) {
			odd = append(odd, k)
		}
	}
	k := odd[0]
	others := "the other layers"
	if best == 1 {
		others = fmt.Sprintf("layer %d", ref)
	}
	how := l.describeDiff(sigs[k], sigs[ref], params[k], params[ref])
	msg := fmt.Sprintf("layer %d differs from %s: %s", k, others, how)
	if len(odd) > 1 {
		names := make([]string, len(odd))
		for i, o := range odd {
			names[i] = fmt.Sprint(o)
		}
		msg += fmt.Sprintf(" (layers differing from the majority: %s)", joinLimited(names, 8))
	}
	return notDecoder(k, "%s", msg)
}

func (l *layering) describeDiff(a, b layerSig, pa, pb []*layerParam) string {
	var parts []string
	ops := map[string]bool{}
	for op := range a.ops {
		ops[op] = true
	}
	for op := range b.ops {
		ops[op] = true
	}
	var opList []string
	for op := range ops {
		opList = append(opList, op)
	}
	sort.Strings(opList)
	var diffs []string
	for _, op := range opList {
		if a.ops[op] != b.ops[op] {
			diffs = append(diffs, fmt.Sprintf("%d %s (others %d)", a.ops[op], op, b.ops[op]))
		}
	}
	if len(diffs) > 0 {
		parts = append(parts, "it has "+joinLimited(diffs, 6))
	}
	if len(pa) != len(pb) {
		parts = append(parts, fmt.Sprintf("%d parameter tensors (others %d)%s", len(pa), len(pb), extraParams(pa, pb)))
	} else {
		for i := range pa {
			if pa[i].key != pb[i].key {
				parts = append(parts, fmt.Sprintf("its parameter %d (%s %s %s) does not match the others' (%s %s %s)", i,
					pa[i].kind, onnx.DTypeName(pb2dt(pa[i].tensor)), dimsString(pa[i].tensor.Dims),
					pb[i].kind, onnx.DTypeName(pb2dt(pb[i].tensor)), dimsString(pb[i].tensor.Dims)))
				break
			}
		}
	}
	if a.past != b.past || a.pres != b.pres {
		parts = append(parts, fmt.Sprintf("%d per-layer inputs and %d outputs (others %d and %d)", a.past, a.pres, b.past, b.pres))
	}
	if len(parts) == 0 {
		parts = append(parts, "its nodes are connected differently")
	}
	return strings.Join(parts, "; ")
}

// extraParams describes the parameters one layer has and the other lacks.
func extraParams(pa, pb []*layerParam) string {
	count := func(ps []*layerParam) map[string]int {
		m := map[string]int{}
		for _, p := range ps {
			m[fmt.Sprintf("%s %s", p.kind, dimsString(p.tensor.Dims))]++
		}
		return m
	}
	ca, cb := count(pa), count(pb)
	var extra []string
	for key, n := range ca {
		if d := n - cb[key]; d > 0 {
			extra = append(extra, fmt.Sprintf("%d× %s", d, key))
		}
	}
	var missing []string
	for key, n := range cb {
		if d := n - ca[key]; d > 0 {
			missing = append(missing, fmt.Sprintf("%d× %s", d, key))
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	s := ""
	if len(extra) > 0 {
		s += ": extra " + joinLimited(extra, 4)
	}
	if len(missing) > 0 {
		if s == "" {
			s = ":"
		} else {
			s += ";"
		}
		s += " missing " + joinLimited(missing, 4)
	}
	return s
}

func pb2dt(t *pb.TensorProto) pb.TensorProto_DataType {
	return pb.TensorProto_DataType(t.GetDataType())
}

func dimsString(d []int64) string {
	parts := make([]string, len(d))
	for i, x := range d {
		parts[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// --- results -------------------------------------------------------------------

func (l *layering) branchNames() []string {
	names := make([]string, l.p)
	count := map[string]int{}
	for b := 0; b < l.p; b++ {
		name := "block"
		if l.p > 1 {
			name = "step"
			attn, proj := false, false
			for _, x := range l.f.steps[l.first+b] {
				if x.Op == "Softmax" {
					attn = true
				}
				if isProjectionNode(x) {
					proj = true
				}
			}
			switch {
			case attn:
				name = "attn"
			case proj:
				name = "mlp"
			}
		}
		count[name]++
		if count[name] > 1 {
			name = fmt.Sprintf("%s%d", name, count[name])
		}
		names[b] = name
	}
	return names
}

func (l *layering) describe(params [][]*layerParam) {
	s := l.s
	branches := l.branchNames()
	// Roles from layer 0 (all layers have the same slots).
	roles := make([]string, len(params[0]))
	perKind := map[string]int{}
	total := map[string]int{}
	group := func(p *layerParam) string {
		b := "layer"
		if p.branch >= 0 {
			b = branches[p.branch]
		}
		return b + "." + p.kind.String()
	}
	for _, p := range params[0] {
		total[group(p)]++
	}
	for i, p := range params[0] {
		gname := group(p)
		if total[gname] > 1 {
			roles[i] = fmt.Sprintf("%s.%d", gname, perKind[gname])
			perKind[gname]++
		} else {
			roles[i] = gname
		}
	}
	shared := map[*graph.Value]bool{}
	constReaders := map[*graph.Value][]int{}
	for k := 0; k < l.nl; k++ {
		layer := Layer{Index: k, Input: l.in[k].Name, Output: l.out[k].Name}
		for _, x := range l.nodes[k] {
			layer.Nodes = append(layer.Nodes, x.Index)
			for _, v := range append(slices.Clip(x.Inputs), x.Implicit...) {
				if v == nil || v == l.in[k] {
					continue
				}
				t := graph.Constant(v)
				if t != nil && isParamTensor(t) {
					continue
				}
				if v.Producer != nil && l.owner[v.Producer] < 0 {
					shared[v] = true
				}
				if v.Input && v.Init == nil && !l.past[k][v] {
					shared[v] = true
				}
				if t != nil && v.Producer == nil {
					constReaders[v] = append(constReaders[v], k)
				}
			}
		}
		sort.Ints(layer.Nodes)
		for i, lp := range params[k] {
			p := Param{Slot: i, Kind: lp.kind, Role: roles[i], Name: lp.value.Name,
				DType: onnx.DTypeName(pb2dt(lp.tensor)), Dims: slices.Clone(lp.tensor.Dims),
				Elements: graph.NumElements(lp.tensor.Dims), Transposed: lp.trans, Hint: hint(lp.uses[0].node.Name, k)}
			for _, u := range lp.uses {
				use := Use{Node: u.node.Index, Input: u.input}
				for _, n := range u.via {
					use.Via = append(use.Via, n.Index)
				}
				p.Uses = append(p.Uses, use)
			}
			layer.Params = append(layer.Params, p)
		}
		// Per-layer inputs and outputs in structural order.
		var past []*graph.Value
		for v := range l.past[k] {
			past = append(past, v)
		}
		sort.Slice(past, func(i, j int) bool {
			hi, hj := l.downv[k][past[i]], l.downv[k][past[j]]
			if hi != hj {
				return hi < hj
			}
			return past[i].Name < past[j].Name
		})
		for _, v := range past {
			layer.Past = append(layer.Past, v.Name)
		}
		var pres []*graph.Value
		for _, x := range l.nodes[k] {
			for _, o := range x.Outputs {
				if o != nil && o.IsOutput() {
					pres = append(pres, o)
				}
			}
		}
		sort.SliceStable(pres, func(i, j int) bool { return l.upv[k][pres[i]] < l.upv[k][pres[j]] })
		// Present[i] is the output computed from Past[i] (present = Concat(past, new)),
		// when there is one; the other outputs follow.
		taken := map[*graph.Value]bool{}
		for _, v := range past {
			reach := l.reachable(k, v)
			for _, o := range pres {
				if !taken[o] && reach[o] {
					taken[o] = true
					layer.Present = append(layer.Present, o.Name)
					break
				}
			}
		}
		for _, v := range pres {
			if !taken[v] {
				layer.Present = append(layer.Present, v.Name)
			}
		}
		s.Layers = append(s.Layers, layer)
	}
	for v, ks := range constReaders {
		if slices.ContainsFunc(ks, func(k int) bool { return k != ks[0] }) {
			shared[v] = true // a constant several layers read (a causal mask buffer)
		}
	}
	s.Shared = sortedNames(shared)
	for _, x := range l.f.a.order {
		if l.owner[x] < 0 {
			s.SharedNodes = append(s.SharedNodes, x.Index)
		}
	}
	sort.Ints(s.SharedNodes)
}

// hint strips the layer's own path from a node name: "/model/layers.3/self_attn/
// q_proj/MatMul" gives "self_attn/q_proj/MatMul". Names are only hints.
func hint(name string, layer int) string {
	parts := strings.Split(strings.TrimPrefix(name, "/"), "/")
	idx := fmt.Sprint(layer)
	for i, p := range parts {
		if p == idx || strings.HasSuffix(p, "."+idx) || strings.HasSuffix(p, "_"+idx) {
			return strings.Join(parts[i+1:], "/")
		}
	}
	return name
}

// reachable returns the values of layer k computed from v.
func (l *layering) reachable(k int, v *graph.Value) map[*graph.Value]bool {
	reach := map[*graph.Value]bool{v: true}
	for _, x := range l.nodes[k] {
		for _, in := range x.Inputs {
			if reach[in] {
				for _, o := range x.Outputs {
					if o != nil {
						reach[o] = true
					}
				}
				break
			}
		}
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
