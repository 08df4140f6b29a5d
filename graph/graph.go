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
	// Unknown are the NodeProto's fields newer than the generated bindings
	// (metadata_props, IR 10: torch's name scopes), written back as they were.
	Unknown []byte

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
			return nil, &DuplicateError{named([]string{name})}
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
			return nil, &DuplicateError{named([]string{name})}
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
		if u := np.ProtoReflect().GetUnknown(); len(u) > 0 {
			n.Unknown = u
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
		return nil, &DuplicateError{named(dups)}
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
