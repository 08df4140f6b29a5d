package discover

import (
	"fmt"
	"slices"
	"sort"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Find locates the decoder stack of m by structure. Names are not used: a model
// whose every name was replaced gives the same stack (up to the names). m is not
// modified. A model that is not a stack of identical decoder layers gives a
// *NotDecoderError saying why.
func Find(m *pb.ModelProto) (*Stack, error) {
	if merged.Is(m) {
		return nil, notDecoder(-1, "optimum's merged decoder: the layers are in the branches of its If on %s (FindMerged finds them: prune and inspect take it apart, eval and generate run it, other commands do not yet)", merged.CondInput)
	}
	if err := checkOps(m); err != nil {
		return nil, err
	}
	g, err := graph.FromModel(m)
	if err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	return find(g)
}

// nodes whose outputs carry only shapes or sizes, not the data of their inputs.
var shapeOps = map[string]bool{"Shape": true, "Size": true}

// ops that pass a weight through unchanged in value (for finding parameters).
var weightChainOps = map[string]bool{"Identity": true, "Transpose": true, "Cast": true}

type analysis struct {
	g     *graph.Graph
	order []*graph.Node
	pos   map[*graph.Node]int // topological position
}

// flow is the data flow from one embedding lookup: the nodes computed from it and
// its dominator tree.
type flow struct {
	a      *analysis
	src    *graph.Value // embedding output
	gather *graph.Node
	data   map[*graph.Node]bool
	dnodes []*graph.Node               // data nodes in topological order
	idom   map[*graph.Node]*graph.Node // nil: the source

	logits *graph.Value
	chain  []*graph.Node  // dominators of the logits' producer, source side first; chain[0] == nil (the source)
	vals   []*graph.Value // value of each chain node (vals[0] == src)
	seg    map[*graph.Node]int
	steps  [][]*graph.Node // data nodes of each step j (chain j -> j+1)
	resid  []bool
	nres   int
}

func find(g *graph.Graph) (*Stack, error) {
	order, err := g.TopoOrder()
	if err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	a := &analysis{g: g, order: order, pos: make(map[*graph.Node]int, len(order))}
	for i, n := range order {
		a.pos[n] = i
	}
	var cands []*graph.Node
	for _, n := range order {
		if isEmbeddingLookup(n) || dequantizedLookup(n) != nil {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return nil, notDecoder(-1, "no token embedding found (a Gather of integer ids from a 2-D float table); onnxslm prunes decoder-only language models that take token ids")
	}
	var best *flow
	for _, n := range cands {
		f := a.flowFrom(n)
		if f == nil {
			continue
		}
		if best == nil || f.nres > best.nres {
			best = f
		}
	}
	if best == nil || best.nres == 0 {
		return nil, notDecoder(-1, "no residual stream: no Add joins a value with a branch computed from it through weight projections (MatMul/Gemm), so there are no decoder layers to find")
	}
	return best.stack()
}

// isEmbeddingLookup: Gather(table, ids) with a constant 2-D float table and
// non-constant indices.
func isEmbeddingLookup(n *graph.Node) bool {
	if n.Op != "Gather" || n.Domain != "" || len(n.Inputs) < 2 || n.Inputs[0] == nil || n.Inputs[1] == nil || len(n.Outputs) == 0 {
		return false
	}
	if n.AttrInt("axis", 0) != 0 {
		return false
	}
	t, _ := resolveConst(n.Inputs[0])
	if t == nil || len(t.Dims) != 2 || !isFloat(t) {
		return false
	}
	if it, _ := resolveConst(n.Inputs[1]); it != nil {
		return false
	}
	return n.Outputs[0] != nil
}

func isFloat(t *pb.TensorProto) bool {
	switch pb.TensorProto_DataType(t.GetDataType()) {
	case pb.TensorProto_FLOAT, pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16, pb.TensorProto_DOUBLE:
		return true
	}
	return false
}

// dequantizedLookup returns the DequantizeLinear that restores the output of
// a Gather of integer ids from a constant 2-D 8-bit table (onnxruntime's
// quantizer's GatherQuant), or nil.
func dequantizedLookup(n *graph.Node) *graph.Node {
	if n.Op != "Gather" || n.Domain != "" || len(n.Inputs) < 2 || n.Inputs[0] == nil || n.Inputs[1] == nil || len(n.Outputs) == 0 || n.Outputs[0] == nil {
		return nil
	}
	t, _ := resolveConst(n.Inputs[0])
	if t == nil || len(t.Dims) != 2 || !isInt8Tensor(t) || n.AttrInt("axis", 0) != 0 {
		return nil
	}
	if it, _ := resolveConst(n.Inputs[1]); it != nil {
		return nil
	}
	cs := n.Outputs[0].Consumers
	if len(cs) != 1 || cs[0].Op != "DequantizeLinear" || len(cs[0].Outputs) == 0 || cs[0].Outputs[0] == nil {
		return nil
	}
	return cs[0]
}

// resolveConst follows v back through Identity, Transpose and Cast nodes to a
// constant (initializer or Constant node output). It returns the tensor, the
// constant value and the chain nodes from the constant's side, or nil.
func resolveConstValue(v *graph.Value) (*pb.TensorProto, *graph.Value, []*graph.Node) {
	var via []*graph.Node
	for v != nil {
		if t := graph.Constant(v); t != nil {
			slices.Reverse(via)
			return t, v, via
		}
		if v.Init != nil { // an initializer that is also a graph input: its default
			slices.Reverse(via)
			return v.Init, v, via
		}
		p := v.Producer
		if p == nil || !weightChainOps[p.Op] || p.Domain != "" || len(p.Inputs) == 0 {
			return nil, nil, nil
		}
		via = append(via, p)
		v = p.Inputs[0]
	}
	return nil, nil, nil
}

func resolveConst(v *graph.Value) (*pb.TensorProto, []*graph.Node) {
	t, _, via := resolveConstValue(v)
	return t, via
}

// isProjection reports whether n multiplies data by a constant 2-D weight, and
// returns the weight's input position and the data input.
func isProjection(n *graph.Node) (wIn int, data *graph.Value, ok bool) {
	if _, _, ok := quantProjection(n); ok {
		t, _ := resolveConst(n.Inputs[1])
		if t == nil || n.Inputs[0] == nil {
			return 0, nil, false
		}
		if dt, _ := resolveConst(n.Inputs[0]); dt != nil {
			return 0, nil, false
		}
		return 1, n.Inputs[0], true
	}
	if isPackedAttention(n) {
		return 1, n.Inputs[0], true
	}
	if n.Domain != "" || (n.Op != "MatMul" && n.Op != "Gemm") || len(n.Inputs) < 2 {
		return 0, nil, false
	}
	for _, i := range []int{1, 0} {
		if n.Op == "Gemm" && i == 0 {
			break
		}
		t, _ := resolveConst(n.Inputs[i])
		if t != nil && len(t.Dims) == 2 && isFloat(t) {
			other := n.Inputs[1-i]
			if ot, _ := resolveConst(other); ot != nil {
				return 0, nil, false // constant × constant
			}
			return i, other, true
		}
	}
	return 0, nil, false
}

// flowFrom analyses the data flow from the embedding lookup n.
func (a *analysis) flowFrom(n *graph.Node) *flow {
	f := &flow{a: a, src: n.Outputs[0], gather: n, data: map[*graph.Node]bool{}, idom: map[*graph.Node]*graph.Node{}}
	if dq := dequantizedLookup(n); dq != nil {
		f.src = dq.Outputs[0]
	}
	// Data nodes: reachable from src, not through shape-only ops.
	stack := []*graph.Value{f.src}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range v.Consumers {
			if f.data[c] {
				continue
			}
			f.data[c] = true
			if shapeOps[c.Op] {
				continue
			}
			for _, o := range c.Outputs {
				if o != nil {
					stack = append(stack, o)
				}
			}
		}
	}
	for _, x := range a.order {
		if f.data[x] {
			f.dnodes = append(f.dnodes, x)
		}
	}
	// Dominator tree over the data nodes, the source as root (nil), in topological order.
	posOf := func(x *graph.Node) int {
		if x == nil {
			return -1
		}
		return a.pos[x]
	}
	intersect := func(x, y *graph.Node) *graph.Node {
		for x != y {
			for posOf(x) > posOf(y) {
				x = f.idom[x]
			}
			for posOf(y) > posOf(x) {
				y = f.idom[y]
			}
		}
		return x
	}
	for _, x := range f.dnodes {
		first := true
		var d *graph.Node
		for _, v := range append(slices.Clip(x.Inputs), x.Implicit...) {
			if v == nil {
				continue
			}
			var p *graph.Node
			switch {
			case v == f.src:
				p = nil
			case v.Producer != nil && f.data[v.Producer] && !shapeOps[v.Producer.Op]:
				p = v.Producer
			default:
				continue
			}
			if first {
				d, first = p, false
			} else {
				d = intersect(d, p)
			}
		}
		f.idom[x] = d
	}
	// The logits: the data-reachable graph output with the most residual steps on
	// its dominator chain (KV-cache outputs of the last layer have fewer); ties go to
	// an output computed by a projection (not a hidden-state output).
	var best *flow
	for _, o := range a.g.Outputs {
		p := o.Producer
		if p == nil || !f.data[p] || shapeOps[p.Op] {
			continue
		}
		c := f.chainTo(o)
		if best == nil || c.nres > best.nres || (c.nres == best.nres && isProjectionNode(p) && !isProjectionNode(best.logits.Producer)) {
			best = c
		}
	}
	return best
}

// chainTo returns a copy of f analysing the dominator chain of output o.
func (f0 *flow) chainTo(o *graph.Value) *flow {
	f := &flow{a: f0.a, src: f0.src, gather: f0.gather, data: f0.data, dnodes: f0.dnodes, idom: f0.idom, logits: o}
	for x := f.logits.Producer; x != nil; x = f.idom[x] {
		f.chain = append(f.chain, x)
	}
	f.chain = append(f.chain, nil)
	slices.Reverse(f.chain)
	chainIdx := map[*graph.Node]int{}
	for j, x := range f.chain {
		if x != nil {
			chainIdx[x] = j
		}
	}
	f.vals = make([]*graph.Value, len(f.chain))
	f.vals[0] = f.src
	for j := 1; j < len(f.chain); j++ {
		f.vals[j] = chainValue(f, f.chain[j], j)
	}
	// Each data node belongs to the step of its nearest chain dominator; a chain node
	// ends the step before it.
	f.seg = map[*graph.Node]int{}
	near := map[*graph.Node]int{}
	for _, x := range f.dnodes {
		d := f.idom[x]
		var nd int
		if d == nil {
			nd = 0
		} else if j, ok := chainIdx[d]; ok {
			nd = j
		} else {
			nd = near[d]
		}
		near[x] = nd
		if j, ok := chainIdx[x]; ok {
			f.seg[x] = j - 1
		} else {
			f.seg[x] = nd
		}
	}
	f.steps = make([][]*graph.Node, len(f.chain)-1)
	for _, x := range f.dnodes {
		if s := f.seg[x]; s >= 0 && s < len(f.steps) {
			f.steps[s] = append(f.steps[s], x)
		}
	}
	f.resid = make([]bool, len(f.steps))
	for j := range f.steps {
		if f.isResidual(j) {
			f.resid[j] = true
			f.nres++
		}
	}
	return f
}

func isProjectionNode(n *graph.Node) bool {
	if n == nil {
		return false
	}
	_, _, ok := isProjection(n)
	return ok
}

// chainValue picks the output of chain node x that the rest of the chain reads.
func chainValue(f *flow, x *graph.Node, j int) *graph.Value {
	if isSkipNorm(x) {
		if sum := skipSum(x); sum != nil {
			return sum
		}
	}
	var first *graph.Value
	for _, o := range x.Outputs {
		if o == nil {
			continue
		}
		if first == nil {
			first = o
		}
		if o == f.logits {
			return o
		}
		if j+1 < len(f.chain) {
			for _, c := range o.Consumers {
				if f.data[c] {
					return o
				}
			}
		}
	}
	return first
}

// isResidual: step j is x -> Add(..) where a path of Add/Identity nodes leads from
// x to the Add (the skip connection) and the step contains a weight projection.
func (f *flow) isResidual(j int) bool {
	end := f.chain[j+1]
	if end == nil || ((end.Op != "Add" || end.Domain != "") && !isSkipNorm(end)) {
		return false
	}
	proj := false
	for _, x := range f.steps[j] {
		if isProjectionNode(x) {
			proj = true
			break
		}
	}
	if !proj {
		return false
	}
	// Skip path: from vals[j] through Add/Identity consumers to end.
	seen := map[*graph.Node]bool{}
	var walk func(v *graph.Value) bool
	walk = func(v *graph.Value) bool {
		for _, c := range v.Consumers {
			if c == end {
				return true
			}
			if seen[c] || (c.Op != "Add" && c.Op != "Identity") || f.seg[c] != j || !f.data[c] {
				continue
			}
			seen[c] = true
			if len(c.Outputs) > 0 && c.Outputs[0] != nil && walk(c.Outputs[0]) {
				return true
			}
		}
		return false
	}
	return walk(f.vals[j])
}

// coarse is a step's signature for finding the period of the stack: residual or
// not, with attention or not, and its number of projections.
type coarse struct {
	resid bool
	attn  bool
	proj  int
}

func (f *flow) coarse(j int) coarse {
	c := coarse{resid: f.resid[j]}
	for _, x := range f.steps[j] {
		if isAttention(x) {
			c.attn = true
		}
		if isProjectionNode(x) {
			c.proj++
		}
	}
	return c
}

func (c coarse) String() string {
	s := "a non-residual step"
	if c.resid {
		s = "a residual branch"
	}
	if c.attn {
		s += " with attention"
	} else {
		s += " without attention"
	}
	return fmt.Sprintf("%s and %d projection(s)", s, c.proj)
}

// stack groups the residual steps into layers and describes them.
func (f *flow) stack() (*Stack, error) {
	var rs []int
	for j, r := range f.resid {
		if r {
			rs = append(rs, j)
		}
	}
	first, last := rs[0], rs[len(rs)-1]
	m := last - first + 1
	sig := make([]coarse, len(f.steps))
	for j := range f.steps {
		sig[j] = f.coarse(j)
	}
	p := 1
	for ; p < m; p++ {
		ok := true
		for k := first; k+p <= last; k++ {
			if sig[k] != sig[k+p] {
				ok = false
				break
			}
		}
		if ok {
			break
		}
	}
	if m%p != 0 { // trailing non-residual steps of the last layer (post-norm blocks)
		ext := p - m%p
		if last+ext >= len(f.steps) {
			return nil, notDecoder(-1, "the last layer is incomplete: its residual branches repeat every %d steps but the stream ends after %d", p, m)
		}
		for k := last + 1; k <= last+ext; k++ {
			if sig[k] != sig[k-p] {
				return nil, notDecoder(-1, "the last layer is incomplete: after its last residual branch comes %s, where %s was expected", sig[k], sig[k-p])
			}
		}
		m += ext
	}
	nl := m / p
	if nl == 1 && m >= 4 {
		// The branches do not repeat: say which one breaks the pattern of the first.
		q := 0
		for k := 1; k < m; k++ {
			if sig[first+k] == sig[first] {
				q = k
				break
			}
		}
		if q > 0 {
			for k := q; k < m; k++ {
				if sig[first+k] != sig[first+k%q] {
					return nil, notDecoder(k/q, "layer %d differs from the others: its residual branch %d is %s, where the other layers have %s", k/q, k%q, sig[first+k], sig[first+k%q])
				}
			}
		}
		return nil, notDecoder(-1, "the %d residual branches do not repeat as a stack of layers", m)
	}
	s := &Stack{Period: p, Embedding: f.src.Name, Logits: f.logits.Name, NumNodes: len(f.a.g.Nodes)}
	if ids := tokenInput(f.gather); ids != nil {
		s.Tokens = ids.Name
	}
	for i := 0; i <= nl; i++ {
		s.Hidden = append(s.Hidden, f.vals[first+i*p].Name)
	}
	fused := f.fusedBoundaries(first, p, nl)
	if fused {
		// The norm at each boundary adds the last branch of the layer below to
		// the stream: h_i = Hidden[i] + Branch[i], and the norm is layer i's
		// (the final norm is shared).
		s.Branch = make([]string, nl+1)
		for i := 1; i <= nl; i++ {
			x, root := f.chain[first+i*p], f.vals[first+i*p-1]
			br := x.Inputs[0]
			if br == root {
				br = x.Inputs[1]
			}
			s.Hidden[i], s.Branch[i] = root.Name, br.Name
			if b := skipBias(x); b != nil {
				if s.BranchBias == nil {
					s.BranchBias = make([]string, nl+1)
				}
				s.BranchBias[i] = b.Name
			}
		}
	}
	if err := f.checkTail(s, first+m); err != nil {
		return nil, err
	}
	lay := newLayering(f, s, first, p, nl)
	lay.fused = fused
	if err := lay.build(); err != nil {
		return nil, err
	}
	return s, nil
}

// fusedBoundaries reports whether every layer boundary after the first is a
// skip norm (the genai builder's layout: the residual add fused into the next
// layer's input norm, and into the final norm), each reading the stream
// value before it and one other value.
func (f *flow) fusedBoundaries(first, p, nl int) bool {
	for i := 1; i <= nl; i++ {
		j := first + i*p
		if j >= len(f.chain) {
			return false
		}
		x := f.chain[j]
		if !isSkipNorm(x) || len(x.Inputs) < 3 || x.Inputs[0] == nil || x.Inputs[1] == nil || x.Inputs[0] == x.Inputs[1] {
			return false
		}
		if root := f.vals[j-1]; x.Inputs[0] != root && x.Inputs[1] != root {
			return false
		}
		if i < nl && skipSum(x) == nil {
			return false
		}
	}
	return true
}

// tokenInput follows the embedding's indices back through Cast/Reshape-like nodes
// to a graph input.
func tokenInput(gather *graph.Node) *graph.Value {
	v := gather.Inputs[1]
	for v != nil && !v.Input {
		p := v.Producer
		if p == nil || len(p.Inputs) == 0 {
			return nil
		}
		switch p.Op {
		case "Cast", "Reshape", "Unsqueeze", "Squeeze", "Identity", "Flatten":
			v = p.Inputs[0]
		default:
			return nil
		}
	}
	return v
}

// checkTail finds the LM head after the last layer (steps from tailStart on) and
// refuses what comes after a decoder stack in other models.
func (f *flow) checkTail(s *Stack, tailStart int) error {
	var projs []*graph.Node
	for j := tailStart; j < len(f.steps); j++ {
		for _, x := range f.steps[j] {
			if isAttention(x) && x != f.logits.Producer {
				return notDecoder(-1, "attention (%s) runs after the last layer of the residual stream %q: an encoder-decoder or another kind of model, not a decoder-only stack", x, s.Hidden[len(s.Hidden)-1])
			}
			if isProjectionNode(x) {
				projs = append(projs, x)
			}
		}
	}
	if len(projs) == 0 {
		return notDecoder(-1, "no LM head: no weight projection computes the output %q from the last layer", f.logits.Name)
	}
	head := projs[len(projs)-1]
	wIn, data, _ := isProjection(head)
	s.LMHead = head.Index
	for data.Producer != nil && f.data[data.Producer] {
		switch data.Producer.Op {
		case "Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze", "DynamicQuantizeLinear":
			data = data.Producer.Inputs[0]
			continue
		}
		break
	}
	s.FinalNorm = data.Name
	wt, wv, _ := resolveConstValue(head.Inputs[wIn])
	s.LMHeadWeight = wv.Name
	et, ev, _ := resolveConstValue(f.gather.Inputs[0])
	s.TiedEmbeddings = ev == wv || sameOrTransposed(et, wt)
	return nil
}

// sameOrTransposed reports whether b holds a's values, possibly transposed.
func sameOrTransposed(a, b *pb.TensorProto) bool {
	if len(a.Dims) != 2 || len(b.Dims) != 2 || a.GetDataType() != b.GetDataType() {
		return false
	}
	x, err1 := onnx.Float32s(a)
	y, err2 := onnx.Float32s(b)
	if err1 != nil || err2 != nil || len(x) != len(y) {
		return false
	}
	r, c := int(a.Dims[0]), int(a.Dims[1])
	if b.Dims[0] == a.Dims[0] && b.Dims[1] == a.Dims[1] && slices.Equal(x, y) {
		return true
	}
	if b.Dims[0] != a.Dims[1] || b.Dims[1] != a.Dims[0] {
		return false
	}
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			if x[i*c+j] != y[j*r+i] {
				return false
			}
		}
	}
	return true
}

// sortedNames returns the names of a set of values, sorted.
func sortedNames(vs map[*graph.Value]bool) []string {
	names := make([]string, 0, len(vs))
	for v := range vs {
		names = append(names, v.Name)
	}
	sort.Strings(names)
	return names
}
