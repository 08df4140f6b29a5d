package runtime

import (
	"fmt"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Options tune a Session.
type Options struct {
	// Threads is the number of goroutines a kernel (matmul, large elementwise
	// loops) may use; 0 means runtime.GOMAXPROCS(0).
	Threads int
	// NoFolding turns off the caching of shape-only subgraphs: every Run then
	// evaluates every node it needs. For tests and debugging.
	NoFolding bool
	// Constants, when set, shares decoded initializers with other sessions
	// (see Constants).
	Constants *Constants
	// Pager, when set, drops the pages of memory-mapped weights as runs read
	// them (see Pager).
	Pager *Pager
}

// Dim is one dimension of a declared shape: Size >= 0 when fixed, -1 when
// symbolic (Param holds the name, e.g. "batch_size") or unknown.
type Dim struct {
	Size  int
	Param string
}

// ValueInfo describes a declared graph input or output.
type ValueInfo struct {
	Name string
	// DType is the element type (FLOAT16 and BFLOAT16 are reported as Float32,
	// the type the runtime computes and accepts them in); Invalid if not declared
	// or not supported.
	DType DType
	// Shape is nil when the model declares no shape.
	Shape []Dim
}

// Session executes one ONNX model. It is safe for concurrent use.
type Session struct {
	model   *pb.ModelProto
	opts    Options
	threads int
	opset   int64
	opsets  map[string]int64 // imported opset of each domain ("" for ai.onnx)

	names    []string       // value index -> name
	index    map[string]int // name -> value index
	inits    map[int]*pb.TensorProto
	producer []int // value index -> node index, -1 for graph inputs and initializers
	nodes    []*node
	inputs   []ValueInfo
	outputs  []ValueInfo
	isInput  map[int]int // value index -> position in inputs

	mu     sync.Mutex
	consts map[int]*Tensor // decoded initializers
	plans  map[string]*plan
	pool   pool
	halfs  halfCache // small 16-bit weights, widened
	// lastPeak is the peak number of float32 activation elements alive during
	// the last Run (for tests).
	lastPeak atomic.Int64
}

// node is a compiled graph node.
type node struct {
	idx   int
	name  string
	op    string
	in    []int // value indices; -1 for an absent optional input
	out   []int // value indices; -1 for an absent optional output
	def   *opDef
	run   kernel
	proto *pb.NodeProto
}

// label names a node for messages: its name, or its op and first output.
func (n *node) label() string {
	if n.name != "" {
		return n.name
	}
	if len(n.proto.GetOutput()) > 0 {
		return n.op + "->" + n.proto.GetOutput()[0]
	}
	return n.op
}

// UnsupportedOp is one node the runtime cannot execute.
type UnsupportedOp struct {
	Op     string
	Domain string
	Node   string
	Opset  int64
	Reason string
}

// UnsupportedError lists the nodes of a model that the runtime cannot execute;
// New returns it before anything runs.
type UnsupportedError struct {
	Ops []UnsupportedOp
}

func (e *UnsupportedError) Error() string {
	var b strings.Builder
	for i, u := range e.Ops {
		if i == 4 {
			fmt.Fprintf(&b, "; and %d more", len(e.Ops)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		domain := u.Domain
		if domain == "" {
			domain = "ai.onnx"
		}
		fmt.Fprintf(&b, "unsupported op %s in node %q (domain %s, opset %d)", u.Op, u.Node, domain, u.Opset)
		if u.Reason != "" {
			b.WriteString(": " + u.Reason)
		}
	}
	return b.String()
}

// New compiles m for execution. It checks that every node's op (with its
// attributes) is supported at the model's opset and that the graph is well
// formed; nothing is executed and no weight is copied (float32 initializers are
// read in place from the model's memory, which must not change while the
// Session is used).
func New(m *pb.ModelProto, opts Options) (*Session, error) {
	m, err := onnx.InlineFunctions(m) // model-local functions run as their bodies
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	g := m.GetGraph()
	if g == nil {
		return nil, fmt.Errorf("runtime: model has no graph")
	}
	s := &Session{
		model:   m,
		opts:    opts,
		threads: opts.Threads,
		index:   map[string]int{},
		inits:   map[int]*pb.TensorProto{},
		isInput: map[int]int{},
		consts:  map[int]*Tensor{},
		plans:   map[string]*plan{},
	}
	if s.threads <= 0 {
		s.threads = goruntime.GOMAXPROCS(0)
	}
	s.opsets = map[string]int64{}
	for _, o := range m.GetOpsetImport() {
		s.opsets[opDomain(o.GetDomain())] = o.GetVersion()
	}
	s.opset = -1
	if v, ok := s.opsets[""]; ok {
		s.opset = v
	}
	if s.opset < 0 {
		return nil, fmt.Errorf("runtime: model imports no ai.onnx opset")
	}
	value := func(name string) int {
		if i, ok := s.index[name]; ok {
			return i
		}
		i := len(s.names)
		s.names = append(s.names, name)
		s.index[name] = i
		s.producer = append(s.producer, -1)
		return i
	}
	for _, t := range g.GetInitializer() {
		if t.GetName() == "" {
			return nil, fmt.Errorf("runtime: graph %q has an initializer without a name", g.GetName())
		}
		s.inits[value(t.GetName())] = t
	}
	for _, vi := range g.GetInput() {
		i := value(vi.GetName())
		if _, isInit := s.inits[i]; isInit {
			continue // an initializer listed as input (IR < 4): a default, not a feed
		}
		s.isInput[i] = len(s.inputs)
		s.inputs = append(s.inputs, valueInfo(vi))
	}
	// Nodes: index outputs first so that any order can be sorted.
	var unsupported []UnsupportedOp
	for ni, np := range g.GetNode() {
		n := &node{idx: ni, name: np.GetName(), op: np.GetOpType(), proto: np}
		for _, o := range np.GetOutput() {
			if o == "" {
				n.out = append(n.out, -1)
				continue
			}
			i := value(o)
			if s.producer[i] >= 0 {
				return nil, fmt.Errorf("runtime: value %q is produced by two nodes (%q and %q)", o, s.nodes[s.producer[i]].label(), n.label())
			}
			if _, isInit := s.inits[i]; isInit {
				return nil, fmt.Errorf("runtime: node %q overwrites initializer %q", n.label(), o)
			}
			if _, isIn := s.isInput[i]; isIn {
				return nil, fmt.Errorf("runtime: node %q overwrites graph input %q", n.label(), o)
			}
			s.producer[i] = ni
			n.out = append(n.out, i)
		}
		s.nodes = append(s.nodes, n)
	}
	for _, n := range s.nodes {
		for _, in := range n.proto.GetInput() {
			if in == "" {
				n.in = append(n.in, -1)
				continue
			}
			i, ok := s.index[in]
			if !ok {
				return nil, fmt.Errorf("runtime: node %q reads %q, which is no graph input, initializer or node output", n.label(), in)
			}
			n.in = append(n.in, i)
		}
		if err := s.implicitInputs(n); err != nil {
			return nil, err
		}
		if u := s.compileNode(n); u != nil {
			unsupported = append(unsupported, *u)
		}
	}
	if len(unsupported) > 0 {
		return nil, &UnsupportedError{Ops: unsupported}
	}
	if err := s.sortNodes(); err != nil {
		return nil, err
	}
	for _, vi := range g.GetOutput() {
		if _, ok := s.index[vi.GetName()]; !ok {
			return nil, fmt.Errorf("runtime: graph output %q is not produced by the graph", vi.GetName())
		}
		s.outputs = append(s.outputs, valueInfo(vi))
	}
	return s, nil
}

// compileNode looks the op up and binds its attributes.
func (s *Session) compileNode(n *node) *UnsupportedOp {
	domain := opDomain(n.proto.GetDomain())
	opset, imported := s.opsets[domain]
	u := &UnsupportedOp{Op: n.op, Domain: n.proto.GetDomain(), Node: n.label(), Opset: opset}
	if !imported {
		u.Reason = fmt.Sprintf("the model imports no opset of domain %q", n.proto.GetDomain())
		return u
	}
	def, ok := ops[opKey{domain, n.op}]
	if !ok {
		return u
	}
	if opset < def.since {
		u.Reason = fmt.Sprintf("%s needs opset %d or newer", n.op, def.since)
		return u
	}
	if domain == "" && opset > newestOpset {
		u.Reason = fmt.Sprintf("opsets newer than %d are not supported", newestOpset)
		return u
	}
	c := &compileCtx{s: s, n: n, opset: s.opset, attrs: attrsOf(n.proto)}
	if len(n.in) < def.minIn || def.maxIn >= 0 && len(n.in) > def.maxIn {
		u.Reason = fmt.Sprintf("%d inputs, want %d..%d", len(n.in), def.minIn, def.maxIn)
		return u
	}
	for i := 0; i < def.minIn; i++ {
		if n.in[i] < 0 {
			u.Reason = fmt.Sprintf("required input %d is missing", i)
			return u
		}
	}
	k, err := def.compile(c)
	if err != nil {
		u.Reason = err.Error()
		return u
	}
	n.def = def
	n.run = k
	return nil
}

// sortNodes orders nodes topologically (stable: the model's order where it is
// already valid) with graph's sort, and rejects cycles (a *graph.CycleError).
func (s *Session) sortNodes() error {
	users := make([][]int, len(s.nodes)) // the nodes reading each node's outputs
	for _, n := range s.nodes {
		for _, v := range n.in {
			if v < 0 {
				continue
			}
			if p := s.producer[v]; p >= 0 {
				users[p] = append(users[p], n.idx)
			}
		}
	}
	idx, err := graph.SortIndices(len(s.nodes), func(i int) []int { return users[i] }, nil, func(i int) string { return s.nodes[i].label() })
	if err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	order := make([]*node, len(idx))
	for k, i := range idx {
		order[k] = s.nodes[i]
	}
	s.nodes = order
	for i, n := range order {
		for _, o := range n.out {
			if o >= 0 {
				s.producer[o] = i
			}
		}
		n.idx = i
	}
	return nil
}

func valueInfo(vi *pb.ValueInfoProto) ValueInfo {
	out := ValueInfo{Name: vi.GetName()}
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return out
	}
	out.DType, _ = fromONNX(pb.TensorProto_DataType(tt.GetElemType()))
	if sh := tt.GetShape(); sh != nil {
		out.Shape = []Dim{}
		for _, d := range sh.GetDim() {
			if d.GetDimParam() == "" && d.Value != nil {
				if _, ok := d.Value.(*pb.TensorShapeProto_Dimension_DimValue); ok {
					out.Shape = append(out.Shape, Dim{Size: int(d.GetDimValue())})
					continue
				}
			}
			out.Shape = append(out.Shape, Dim{Size: -1, Param: d.GetDimParam()})
		}
	}
	return out
}

// Inputs lists the graph inputs that must or may be fed (initializers listed
// as inputs are left out), in the model's order.
func (s *Session) Inputs() []ValueInfo { return cloneInfos(s.inputs) }

// Outputs lists the graph outputs in the model's order.
func (s *Session) Outputs() []ValueInfo { return cloneInfos(s.outputs) }

func cloneInfos(v []ValueInfo) []ValueInfo {
	out := make([]ValueInfo, len(v))
	for i, x := range v {
		x.Shape = append([]Dim(nil), x.Shape...)
		out[i] = x
	}
	return out
}

// Opset is the model's ai.onnx opset version.
func (s *Session) Opset() int64 { return s.opset }

// Model returns the model the Session was made from.
func (s *Session) Model() *pb.ModelProto { return s.model }

// HasValue reports whether name is a value of the graph (input, initializer or
// node output), i.e. something Run can be fed or asked for.
func (s *Session) HasValue(name string) bool { _, ok := s.index[name]; return ok }

// Initializer returns the decoded initializer name (shared with the model: do
// not modify it). A float16 or bfloat16 initializer comes widened to float32,
// in a new tensor each call (the Session itself keeps it in 16 bits).
func (s *Session) Initializer(name string) (*Tensor, error) {
	i, ok := s.index[name]
	if !ok || s.inits[i] == nil {
		return nil, fmt.Errorf("runtime: no initializer %q", name)
	}
	t, err := s.initializer(i)
	if err != nil {
		return nil, err
	}
	return t.widened(), nil
}

// InitializerShape returns the dimensions of initializer name without
// decoding or widening its data.
func (s *Session) InitializerShape(name string) ([]int, error) {
	i, ok := s.index[name]
	if !ok || s.inits[i] == nil {
		return nil, fmt.Errorf("runtime: no initializer %q", name)
	}
	dims := s.inits[i].GetDims()
	shape := make([]int, len(dims))
	for j, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("runtime: initializer %q has negative dimension %d", name, d)
		}
		shape[j] = int(d)
	}
	return shape, nil
}

// initializer decodes initializer i once; float32 data aliases the model, and
// float16 and bfloat16 data stay 16-bit tensors aliasing it (half.go).
func (s *Session) initializer(i int) (*Tensor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.consts[i]; ok {
		return t, nil
	}
	t, err := s.opts.Constants.decode(s.inits[i])
	if err != nil {
		return nil, fmt.Errorf("runtime: initializer %q: %w", s.names[i], err)
	}
	s.consts[i] = t
	return t, nil
}

// tensorFromProto decodes an ONNX tensor. FLOAT data may alias tp's memory;
// FLOAT16 and BFLOAT16 become 16-bit tensors aliasing it (never written).
func tensorFromProto(tp *pb.TensorProto) (*Tensor, error) {
	shape := make([]int, len(tp.GetDims()))
	for i, d := range tp.GetDims() {
		if d < 0 {
			return nil, fmt.Errorf("negative dimension %d", d)
		}
		shape[i] = int(d)
	}
	if _, err := checkShape(shape); err != nil {
		return nil, err
	}
	dt := pb.TensorProto_DataType(tp.GetDataType())
	switch dt {
	case pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
		return halfFromProto(tp, shape)
	case pb.TensorProto_FLOAT:
		v, err := onnx.Float32s(tp)
		if err != nil {
			return nil, err
		}
		return FromSlice(shape, v)
	}
	rt, ok := fromONNX(dt)
	if !ok {
		return nil, fmt.Errorf("data type %s is not supported by the runtime", onnx.DTypeName(dt))
	}
	d, err := onnx.DecodeTensor(tp)
	if err != nil {
		return nil, err
	}
	t, err := FromSlice(shape, d.Data)
	if err != nil {
		return nil, err
	}
	if t.dtype != rt {
		return nil, fmt.Errorf("decoded %v data for %s", t.dtype, onnx.DTypeName(dt))
	}
	return t, nil
}

// sortedNames returns the keys of m in order.
func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
