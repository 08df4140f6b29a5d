// Editing the IR: adding, rewiring, removing and renaming nodes and values,
// keeping producers and consumers consistent.

package graph

import (
	"fmt"
	"slices"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// AddInitializer adds t as an initializer named t.GetName(). t is kept as is: the
// caller must not modify it afterwards.
func (g *Graph) AddInitializer(t *pb.TensorProto) (*Value, error) {
	name := t.GetName()
	if name == "" {
		return nil, fmt.Errorf("graph: initializer without a name")
	}
	if g.Has(name) {
		return nil, &DuplicateError{named([]string{name})}
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
			return nil, &DuplicateError{named([]string{o})}
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
		return &DuplicateError{named([]string{name})}
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
