// Package graph is an SSA-style IR over the main graph of an ONNX model: values with
// one producer and their consumers, a deterministic topological order, dead-code
// elimination, subgraph extraction, renaming, validation and a pass pipeline.
//
// A Graph is built from a *pb.ModelProto without modifying it: nodes are copied,
// while attribute, tensor and type protos are shared with the source model and must
// be treated as read-only by everyone. Model() writes a new ModelProto that again
// shares those protos, so building many variants of one model is cheap.
package graph

import (
	"fmt"
	"slices"
	"sort"

	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// Value is one named tensor of the graph: a graph input, an initializer or a node
// output. Exactly one of these defines it (an initializer may also be listed as a
// graph input, as in IR < 4 models).
type Value struct {
	Name string
	// Producer is the node that computes the value; nil for graph inputs and initializers.
	Producer *Node
	// Consumers are the nodes that read the value (each listed once), including nodes
	// whose subgraph attributes read it implicitly.
	Consumers []*Node
	// Init is the initializer tensor (shared with the source model: read-only).
	Init *pb.TensorProto
	// Input reports whether the value is a graph input.
	Input bool
	// Info is the declared type (graph input, output or value_info); may be nil.
	// Shared with the source model: read-only. Model() renames a copy when needed.
	Info *pb.ValueInfoProto

	output bool // listed in graph outputs
	vinfo  bool // Info came from graph.value_info (written back there)
	vorder int  // position of the value_info entry, for a stable output order
}

// IsConst reports whether v is an initializer that is not also a graph input.
func (v *Value) IsConst() bool { return v.Init != nil && !v.Input }

// IsOutput reports whether v is a graph output.
func (v *Value) IsOutput() bool { return v.output }

// Node is one operator application.
type Node struct {
	Name   string
	Op     string
	Domain string
	// Inputs are the node's inputs in order; nil stands for an omitted optional input.
	Inputs []*Value
	// Outputs are the node's outputs in order; nil stands for an omitted optional output.
	Outputs []*Value
	// Implicit are values read by subgraph attributes (If/Loop/Scan bodies) from the
	// enclosing graph, sorted by name.
	Implicit []*Value
	// Attrs are shared with the source model: never modify them; replace the slice.
	Attrs []*pb.AttributeProto
	Doc   string
	// Index is the node's position in the source model's node list, or -1 for a node
	// created by a rewrite.
	Index int

	seq  int // creation order: the tie-break of the topological order
	dead bool
}

// Attr returns the attribute named name, or nil.
func (n *Node) Attr(name string) *pb.AttributeProto {
	for _, a := range n.Attrs {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

// AttrInt returns the integer attribute name, or def when absent.
func (n *Node) AttrInt(name string, def int64) int64 {
	if a := n.Attr(name); a != nil {
		return a.GetI()
	}
	return def
}

// AttrInts returns the integer-list attribute name, or nil when absent.
func (n *Node) AttrInts(name string) []int64 {
	if a := n.Attr(name); a != nil {
		return a.GetInts()
	}
	return nil
}

// String names the node for messages: its name, or its op and first output.
func (n *Node) String() string {
	if n.Name != "" {
		return fmt.Sprintf("%s %q", n.Op, n.Name)
	}
	for _, o := range n.Outputs {
		if o != nil {
			return fmt.Sprintf("%s -> %q", n.Op, o.Name)
		}
	}
	return n.Op
}

// Graph is the IR of a model's main graph.
type Graph struct {
	// Name is the graph's name.
	Name string
	// Nodes in their current order (topological after FromModel and Sort).
	Nodes []*Node
	// Inputs are the graph inputs in order (initializers listed as inputs included).
	Inputs []*Value
	// Outputs are the graph outputs in order.
	Outputs []*Value

	values  map[string]*Value
	inits   []*Value // initializers in order
	src     *pb.ModelProto
	nextSeq int
	// Meta are the metadata_props of the model, in order; Model() writes them.
	Meta []*pb.StringStringEntryProto
}

// FromModel builds the IR of m's main graph. It does not modify m. It fails when a
// value is defined twice or a node reads nothing at all; undefined inputs and cycles
// are reported by Validate, not here, so broken graphs can still be inspected.
func FromModel(m *pb.ModelProto) (*Graph, error) {
	gp := m.GetGraph()
	if gp == nil {
		return nil, fmt.Errorf("graph: model has no graph")
	}
	g := &Graph{
		Name:   gp.GetName(),
		values: make(map[string]*Value, 2*len(gp.GetNode())+len(gp.GetInitializer())),
		src:    m,
		Meta:   slices.Clone(m.GetMetadataProps()),
	}
	if len(gp.GetSparseInitializer()) > 0 {
		return nil, fmt.Errorf("graph %q: sparse initializers are not supported", g.Name)
	}
	for _, t := range gp.GetInitializer() {
		name := t.GetName()
		if name == "" {
			return nil, fmt.Errorf("graph %q: initializer without a name", g.Name)
		}
		if _, dup := g.values[name]; dup {
			return nil, &DuplicateError{Names: []string{name}, N: 1}
		}
		v := &Value{Name: name, Init: t}
		g.values[name] = v
		g.inits = append(g.inits, v)
	}
	for _, vi := range gp.GetInput() {
		name := vi.GetName()
		v := g.values[name]
		if v == nil {
			v = &Value{Name: name}
			g.values[name] = v
		} else if v.Input {
			return nil, &DuplicateError{Names: []string{name}, N: 1}
		}
		v.Input = true
		v.Info = vi
		g.Inputs = append(g.Inputs, v)
	}
	var dups []string
	for i, np := range gp.GetNode() {
		n := &Node{
			Name:   np.GetName(),
			Op:     np.GetOpType(),
			Domain: np.GetDomain(),
			Attrs:  np.GetAttribute(),
			Doc:    np.GetDocString(),
			Index:  i,
			seq:    i,
		}
		n.Outputs = make([]*Value, len(np.GetOutput()))
		for j, name := range np.GetOutput() {
			if name == "" {
				continue
			}
			v := g.values[name]
			if v == nil {
				v = &Value{Name: name}
				g.values[name] = v
			} else if v.Producer != nil || v.Init != nil || v.Input {
				dups = append(dups, name)
				continue
			}
			v.Producer = n
			n.Outputs[j] = v
		}
		g.Nodes = append(g.Nodes, n)
	}
	g.nextSeq = len(g.Nodes)
	if len(dups) > 0 {
		return nil, &DuplicateError{Names: bounded(dups), N: len(dups)}
	}
	// Inputs after all outputs exist, so forward references (broken graphs) resolve.
	for i, n := range g.Nodes {
		np := gp.GetNode()[i]
		n.Inputs = make([]*Value, len(np.GetInput()))
		for j, name := range np.GetInput() {
			if name == "" {
				continue
			}
			n.Inputs[j] = g.valueOrUndefined(name)
		}
		if implicit := outerRefs(np.GetAttribute()); len(implicit) > 0 {
			for _, name := range implicit {
				n.Implicit = append(n.Implicit, g.valueOrUndefined(name))
			}
		}
		for _, v := range n.Inputs {
			if v != nil {
				v.addConsumer(n)
			}
		}
		for _, v := range n.Implicit {
			v.addConsumer(n)
		}
	}
	for _, vi := range gp.GetOutput() {
		v := g.valueOrUndefined(vi.GetName())
		v.output = true
		if v.Info == nil || !v.Input {
			v.Info = vi
		}
		g.Outputs = append(g.Outputs, v)
	}
	for i, vi := range gp.GetValueInfo() {
		v := g.values[vi.GetName()]
		if v == nil {
			continue // value_info of a value that does not exist: dropped on output
		}
		if v.Info == nil {
			v.Info = vi
		}
		v.vinfo = true
		v.vorder = i
	}
	return g, nil
}

// valueOrUndefined returns the value named name, creating an undefined one (no
// producer, not an input or initializer) when the graph does not define it.
func (g *Graph) valueOrUndefined(name string) *Value {
	v := g.values[name]
	if v == nil {
		v = &Value{Name: name}
		g.values[name] = v
	}
	return v
}

func (v *Value) addConsumer(n *Node) {
	// Consumers are few per value; a linear scan keeps them unique.
	for _, c := range v.Consumers {
		if c == n {
			return
		}
	}
	v.Consumers = append(v.Consumers, n)
}

func (v *Value) removeConsumer(n *Node) {
	if i := slices.Index(v.Consumers, n); i >= 0 {
		v.Consumers = slices.Delete(v.Consumers, i, i+1)
	}
}

// reads reports whether n reads v as an explicit or implicit input.
func (n *Node) reads(v *Value) bool {
	return slices.Contains(n.Inputs, v) || slices.Contains(n.Implicit, v)
}

// outerRefs returns the names that subgraph attributes read from enclosing scopes.
func outerRefs(attrs []*pb.AttributeProto) []string {
	var refs map[string]bool
	var walk func(gp *pb.GraphProto, outer map[string]bool)
	walk = func(gp *pb.GraphProto, outer map[string]bool) {
		defined := map[string]bool{}
		for _, t := range gp.GetInitializer() {
			defined[t.GetName()] = true
		}
		for _, vi := range gp.GetInput() {
			defined[vi.GetName()] = true
		}
		for _, n := range gp.GetNode() {
			for _, o := range n.GetOutput() {
				defined[o] = true
			}
		}
		use := func(name string) {
			if name != "" && !defined[name] && !outer[name] {
				if refs == nil {
					refs = map[string]bool{}
				}
				refs[name] = true
			}
		}
		for _, n := range gp.GetNode() {
			for _, in := range n.GetInput() {
				use(in)
			}
			for _, a := range n.GetAttribute() {
				for _, sub := range subgraphs(a) {
					walk(sub, defined)
				}
			}
		}
		for _, vi := range gp.GetOutput() {
			use(vi.GetName())
		}
	}
	for _, a := range attrs {
		for _, sub := range subgraphs(a) {
			walk(sub, nil)
		}
	}
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func subgraphs(a *pb.AttributeProto) []*pb.GraphProto {
	var gs []*pb.GraphProto
	if a.G != nil {
		gs = append(gs, a.G)
	}
	return append(gs, a.Graphs...)
}

// Source returns the model the graph was built from.
func (g *Graph) Source() *pb.ModelProto { return g.src }

// Value returns the value named name, or nil.
func (g *Graph) Value(name string) *Value { return g.values[name] }

// Initializers returns the initializers in order.
func (g *Graph) Initializers() []*Value { return slices.Clone(g.inits) }

// NumValues returns the number of named values (inputs, initializers, node outputs).
func (g *Graph) NumValues() int { return len(g.values) }

// Has reports whether the graph defines or references a value named name.
func (g *Graph) Has(name string) bool { _, ok := g.values[name]; return ok }

// UniqueName returns base if no value has that name, else base_1, base_2, ...
func (g *Graph) UniqueName(base string) string {
	if !g.Has(base) {
		return base
	}
	for i := 1; ; i++ {
		name := fmt.Sprintf("%s_%d", base, i)
		if !g.Has(name) {
			return name
		}
	}
}

// AddInitializer adds t as an initializer named t.GetName(). t is kept as is: the
// caller must not modify it afterwards.
func (g *Graph) AddInitializer(t *pb.TensorProto) (*Value, error) {
	name := t.GetName()
	if name == "" {
		return nil, fmt.Errorf("graph: initializer without a name")
	}
	if g.Has(name) {
		return nil, &DuplicateError{Names: []string{name}, N: 1}
	}
	v := &Value{Name: name, Init: t}
	g.values[name] = v
	g.inits = append(g.inits, v)
	return v, nil
}

// AddNode appends a node computing outputs (new value names) from inputs ("" for an
// omitted optional input). attrs are kept as is (shared, read-only).
func (g *Graph) AddNode(op, name string, inputs []string, outputs []string, attrs ...*pb.AttributeProto) (*Node, error) {
	n := &Node{Name: name, Op: op, Attrs: attrs, Index: -1, seq: g.nextSeq}
	for _, o := range outputs {
		if o != "" && g.Has(o) {
			return nil, &DuplicateError{Names: []string{o}, N: 1}
		}
	}
	g.nextSeq++
	n.Inputs = make([]*Value, len(inputs))
	for i, in := range inputs {
		if in == "" {
			continue
		}
		v := g.values[in]
		if v == nil {
			return nil, fmt.Errorf("graph: node %s reads undefined value %q", n, in)
		}
		n.Inputs[i] = v
		v.addConsumer(n)
	}
	n.Outputs = make([]*Value, len(outputs))
	for i, o := range outputs {
		if o == "" {
			continue
		}
		v := &Value{Name: o, Producer: n}
		g.values[o] = v
		n.Outputs[i] = v
	}
	g.Nodes = append(g.Nodes, n)
	return n, nil
}

// CloneNode adds a copy of n (same op, attributes and inputs) whose outputs get the
// given new names; it is placed right after n in the node order's tie-break.
func (g *Graph) CloneNode(n *Node, name string, outputs []string) (*Node, error) {
	if len(outputs) != len(n.Outputs) {
		return nil, fmt.Errorf("graph: clone of %s: %d output names for %d outputs", n, len(outputs), len(n.Outputs))
	}
	ins := make([]string, len(n.Inputs))
	for i, v := range n.Inputs {
		if v != nil {
			ins[i] = v.Name
		}
	}
	c, err := g.AddNode(n.Op, name, ins, outputs, n.Attrs...)
	if err != nil {
		return nil, err
	}
	c.Domain, c.Doc = n.Domain, n.Doc
	for _, v := range n.Implicit {
		c.Implicit = append(c.Implicit, v)
		v.addConsumer(c)
	}
	c.seq = n.seq // sorts next to the original (ties are broken by position)
	return c, nil
}

// SetInput makes input i of n read v (nil: omitted).
func (g *Graph) SetInput(n *Node, i int, v *Value) {
	old := n.Inputs[i]
	n.Inputs[i] = v
	if old != nil && !n.reads(old) {
		old.removeConsumer(n)
	}
	if v != nil {
		v.addConsumer(n)
	}
}

// ReplaceUses makes every consumer of old read new instead, and replaces old in the
// graph outputs by new when old is a graph output. It does not touch old's producer.
func (g *Graph) ReplaceUses(old, new *Value) {
	if old == new {
		return
	}
	for _, n := range slices.Clone(old.Consumers) {
		for i, v := range n.Inputs {
			if v == old {
				n.Inputs[i] = new
			}
		}
		for i, v := range n.Implicit {
			if v == old {
				n.Implicit[i] = new
			}
		}
		new.addConsumer(n)
	}
	old.Consumers = nil
	for i, v := range g.Outputs {
		if v == old {
			g.Outputs[i] = new
			old.output = false
			new.output = true
		}
	}
}

// RemoveInput removes v from the graph inputs (its consumers then read an undefined
// value unless v is also an initializer).
func (g *Graph) RemoveInput(v *Value) {
	if i := slices.Index(g.Inputs, v); i >= 0 {
		g.Inputs = slices.Delete(g.Inputs, i, i+1)
	}
	v.Input = false
	if v.Init == nil && v.Producer == nil && len(v.Consumers) == 0 {
		delete(g.values, v.Name)
	}
}

// RemoveOutput removes v from the graph outputs.
func (g *Graph) RemoveOutput(v *Value) {
	g.Outputs = slices.DeleteFunc(g.Outputs, func(o *Value) bool { return o == v })
	v.output = false
}

// AddOutput appends v to the graph outputs, with info as its declared type (may be nil).
func (g *Graph) AddOutput(v *Value, info *pb.ValueInfoProto) {
	if v.output {
		return
	}
	v.output = true
	if info != nil {
		v.Info = info
	}
	g.Outputs = append(g.Outputs, v)
}

// RemoveNodes deletes the given nodes; values they produced stay referenced by any
// remaining consumer (as undefined values, which Validate reports).
func (g *Graph) RemoveNodes(dead map[*Node]bool) {
	if len(dead) == 0 {
		return
	}
	kept := g.Nodes[:0]
	var gone []*Node
	for _, n := range g.Nodes {
		if !dead[n] {
			kept = append(kept, n)
			continue
		}
		n.dead = true
		gone = append(gone, n)
		for _, v := range n.Inputs {
			if v != nil {
				v.removeConsumer(n)
			}
		}
		for _, v := range n.Implicit {
			v.removeConsumer(n)
		}
		for _, v := range n.Outputs {
			if v != nil {
				v.Producer = nil
			}
		}
	}
	clear(g.Nodes[len(kept):])
	g.Nodes = kept
	// Forget values that nothing defines or reads any more.
	orphan := func(v *Value) {
		if v != nil && v.Producer == nil && v.Init == nil && !v.Input && !v.output && len(v.Consumers) == 0 && g.values[v.Name] == v {
			delete(g.values, v.Name)
		}
	}
	for _, n := range gone {
		for _, v := range n.Outputs {
			orphan(v)
		}
		for _, v := range n.Inputs {
			orphan(v)
		}
	}
}

// RemoveInitializer deletes the initializer v. Its consumers (if any) then read an
// undefined value.
func (g *Graph) RemoveInitializer(v *Value) {
	g.inits = slices.DeleteFunc(g.inits, func(x *Value) bool { return x == v })
	v.Init = nil
	if v.Input {
		g.RemoveInput(v)
	}
	if len(v.Consumers) == 0 && !v.output {
		delete(g.values, v.Name)
	}
}

// Rename gives v a new name, which must be unused. Values read by subgraph attributes
// cannot be renamed (their subgraphs refer to them by name).
func (g *Graph) Rename(v *Value, name string) error {
	if v.Name == name {
		return nil
	}
	if g.values[v.Name] != v {
		return fmt.Errorf("graph: rename %q: not a value of this graph", v.Name)
	}
	if name == "" {
		return fmt.Errorf("graph: rename %q: empty name", v.Name)
	}
	if g.Has(name) {
		return &DuplicateError{Names: []string{name}, N: 1}
	}
	for _, c := range v.Consumers {
		if slices.Contains(c.Implicit, v) {
			return fmt.Errorf("graph: rename %q: read by the subgraph of node %s", v.Name, c)
		}
	}
	delete(g.values, v.Name)
	v.Name = name
	g.values[name] = v
	return nil
}

// Model writes the graph as a new ModelProto. Fields of the source model other than
// the graph and metadata_props are copied (shallowly); nodes are written in the
// current order (call Sort first for a topological one); attributes, tensors and
// types are shared with the source model.
func (g *Graph) Model() *pb.ModelProto {
	src := g.src
	m := &pb.ModelProto{
		IrVersion:       src.IrVersion,
		OpsetImport:     src.OpsetImport,
		ProducerName:    src.ProducerName,
		ProducerVersion: src.ProducerVersion,
		Domain:          src.Domain,
		ModelVersion:    src.ModelVersion,
		DocString:       src.DocString,
		MetadataProps:   g.Meta,
		TrainingInfo:    src.TrainingInfo,
		Functions:       src.Functions,
	}
	m.ProtoReflect().SetUnknown(src.ProtoReflect().GetUnknown())
	sg := src.GetGraph()
	gp := &pb.GraphProto{
		Name:                   proto.String(g.Name),
		DocString:              sg.DocString,
		QuantizationAnnotation: sg.QuantizationAnnotation,
	}
	if sg.Name == nil && g.Name == "" {
		gp.Name = nil
	}
	gp.ProtoReflect().SetUnknown(sg.ProtoReflect().GetUnknown())
	gp.Node = make([]*pb.NodeProto, len(g.Nodes))
	for i, n := range g.Nodes {
		gp.Node[i] = n.proto()
	}
	gp.Initializer = make([]*pb.TensorProto, len(g.inits))
	for i, v := range g.inits {
		gp.Initializer[i] = renamedTensor(v.Init, v.Name)
	}
	for _, v := range g.Inputs {
		gp.Input = append(gp.Input, renamedInfo(v.Info, v.Name))
	}
	for _, v := range g.Outputs {
		gp.Output = append(gp.Output, renamedInfo(v.Info, v.Name))
	}
	var vis []*Value
	for _, v := range g.values {
		if v.vinfo && v.Info != nil && !v.Input && !v.output && v.Init == nil && v.Producer != nil {
			vis = append(vis, v)
		}
	}
	sort.Slice(vis, func(i, j int) bool {
		if vis[i].vorder != vis[j].vorder {
			return vis[i].vorder < vis[j].vorder
		}
		return vis[i].Name < vis[j].Name
	})
	for _, v := range vis {
		gp.ValueInfo = append(gp.ValueInfo, renamedInfo(v.Info, v.Name))
	}
	m.Graph = gp
	return m
}

func (n *Node) proto() *pb.NodeProto {
	np := &pb.NodeProto{
		Input:     make([]string, len(n.Inputs)),
		Output:    make([]string, len(n.Outputs)),
		OpType:    proto.String(n.Op),
		Attribute: n.Attrs,
	}
	if n.Name != "" {
		np.Name = proto.String(n.Name)
	}
	if n.Domain != "" {
		np.Domain = proto.String(n.Domain)
	}
	if n.Doc != "" {
		np.DocString = proto.String(n.Doc)
	}
	for i, v := range n.Inputs {
		if v != nil {
			np.Input[i] = v.Name
		}
	}
	for i, v := range n.Outputs {
		if v != nil {
			np.Output[i] = v.Name
		}
	}
	return np
}

// renamedTensor returns t when it is already named name, else a shallow copy named
// name that shares t's data.
func renamedTensor(t *pb.TensorProto, name string) *pb.TensorProto {
	if t.GetName() == name {
		return t
	}
	c := &pb.TensorProto{
		Dims:         t.Dims,
		DataType:     t.DataType,
		Segment:      t.Segment,
		FloatData:    t.FloatData,
		Int32Data:    t.Int32Data,
		StringData:   t.StringData,
		Int64Data:    t.Int64Data,
		Name:         proto.String(name),
		DocString:    t.DocString,
		RawData:      t.RawData,
		ExternalData: t.ExternalData,
		DataLocation: t.DataLocation,
		DoubleData:   t.DoubleData,
		Uint64Data:   t.Uint64Data,
	}
	c.ProtoReflect().SetUnknown(t.ProtoReflect().GetUnknown())
	return c
}

// renamedInfo returns vi named name, copying it when its name differs (vi may be nil:
// a bare ValueInfoProto with only the name is returned).
func renamedInfo(vi *pb.ValueInfoProto, name string) *pb.ValueInfoProto {
	if vi == nil {
		return &pb.ValueInfoProto{Name: proto.String(name)}
	}
	if vi.GetName() == name {
		return vi
	}
	c := &pb.ValueInfoProto{Name: proto.String(name), Type: vi.Type, DocString: vi.DocString}
	c.ProtoReflect().SetUnknown(vi.ProtoReflect().GetUnknown())
	return c
}

// Clone returns an independent copy of the IR (nodes and values are copied; protos
// stay shared).
func (g *Graph) Clone() *Graph {
	c := &Graph{Name: g.Name, src: g.src, nextSeq: g.nextSeq, Meta: slices.Clone(g.Meta),
		values: make(map[string]*Value, len(g.values))}
	vmap := make(map[*Value]*Value, len(g.values))
	cv := func(v *Value) *Value {
		if v == nil {
			return nil
		}
		if x, ok := vmap[v]; ok {
			return x
		}
		x := &Value{Name: v.Name, Init: v.Init, Input: v.Input, Info: v.Info, output: v.output, vinfo: v.vinfo, vorder: v.vorder}
		vmap[v] = x
		c.values[x.Name] = x
		return x
	}
	for _, v := range g.values {
		cv(v)
	}
	nmap := make(map[*Node]*Node, len(g.Nodes))
	for _, n := range g.Nodes {
		x := &Node{Name: n.Name, Op: n.Op, Domain: n.Domain, Attrs: n.Attrs, Doc: n.Doc, Index: n.Index, seq: n.seq}
		x.Inputs = make([]*Value, len(n.Inputs))
		for i, v := range n.Inputs {
			x.Inputs[i] = cv(v)
		}
		x.Outputs = make([]*Value, len(n.Outputs))
		for i, v := range n.Outputs {
			x.Outputs[i] = cv(v)
			if v != nil {
				x.Outputs[i].Producer = x
			}
		}
		for _, v := range n.Implicit {
			x.Implicit = append(x.Implicit, cv(v))
		}
		nmap[n] = x
		c.Nodes = append(c.Nodes, x)
	}
	for v, x := range vmap {
		x.Consumers = make([]*Node, 0, len(v.Consumers))
		for _, n := range v.Consumers {
			if xn, ok := nmap[n]; ok {
				x.Consumers = append(x.Consumers, xn)
			}
		}
	}
	for _, v := range g.inits {
		c.inits = append(c.inits, vmap[v])
	}
	for _, v := range g.Inputs {
		c.Inputs = append(c.Inputs, vmap[v])
	}
	for _, v := range g.Outputs {
		c.Outputs = append(c.Outputs, vmap[v])
	}
	return c
}
