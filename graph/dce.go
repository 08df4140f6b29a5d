package graph

import (
	"fmt"
	"slices"
)

// Live returns the nodes that the graph outputs depend on.
func (g *Graph) Live() map[*Node]bool {
	live := make(map[*Node]bool, len(g.Nodes))
	var stack []*Node
	push := func(v *Value) {
		if v != nil && v.Producer != nil && !v.Producer.dead && !live[v.Producer] {
			live[v.Producer] = true
			stack = append(stack, v.Producer)
		}
	}
	for _, v := range g.Outputs {
		push(v)
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, v := range n.Inputs {
			push(v)
		}
		for _, v := range n.Implicit {
			push(v)
		}
	}
	return live
}

// DCEStats says what RemoveDead removed.
type DCEStats struct {
	Nodes, Initializers int
}

// RemoveDead removes the nodes no graph output depends on and the initializers no
// remaining node reads (initializers that are graph outputs stay; an initializer
// also listed as a graph input is removed from both when unused). Graph inputs are
// the model's interface and stay even when unused.
func (g *Graph) RemoveDead() DCEStats {
	live := g.Live()
	dead := map[*Node]bool{}
	for _, n := range g.Nodes {
		if !live[n] {
			dead[n] = true
		}
	}
	g.RemoveNodes(dead)
	var st DCEStats
	st.Nodes = len(dead)
	for _, v := range slices.Clone(g.inits) {
		if len(v.Consumers) == 0 && !v.output {
			g.RemoveInitializer(v)
			st.Initializers++
		}
	}
	return st
}

// Extract returns a new graph that computes outputs from inputs: the nodes on which
// outputs depend, stopping at the given input values, which become graph inputs
// (in the order given, before the source graph's inputs that are still needed).
// Inputs keep their declared type when the source graph has one; give others a type
// with SetInfo before writing a model that runtimes should load.
func (g *Graph) Extract(inputs, outputs []string) (*Graph, error) {
	stop := map[*Value]bool{}
	for _, name := range inputs {
		v := g.values[name]
		if v == nil {
			return nil, fmt.Errorf("graph: extract: no value %q to use as input", name)
		}
		stop[v] = true
	}
	c := g.Clone()
	// Map through names: the clone has the same names.
	var outs []*Value
	for _, name := range outputs {
		v := c.values[name]
		if v == nil {
			return nil, fmt.Errorf("graph: extract: no value %q to use as output", name)
		}
		outs = append(outs, v)
	}
	cstop := map[*Value]bool{}
	for v := range stop {
		cstop[c.values[v.Name]] = true
	}
	// Inputs that are computed: detach them from their producers.
	var newInputs []*Value
	for _, name := range inputs {
		v := c.values[name]
		if slices.Contains(newInputs, v) {
			continue
		}
		newInputs = append(newInputs, v)
		if v.Init != nil {
			c.inits = slices.DeleteFunc(c.inits, func(x *Value) bool { return x == v })
			v.Init = nil
		}
		if p := v.Producer; p != nil {
			for i, o := range p.Outputs {
				if o == v {
					// The producer keeps an anonymous placeholder output.
					ph := &Value{Name: c.UniqueName(v.Name + ".extracted"), Producer: p}
					c.values[ph.Name] = ph
					p.Outputs[i] = ph
				}
			}
			v.Producer = nil
		}
	}
	for _, v := range c.Outputs {
		v.output = false
	}
	c.Outputs = nil
	for _, v := range outs {
		if !v.output {
			v.output = true
			c.Outputs = append(c.Outputs, v)
		}
	}
	oldInputs := c.Inputs
	c.Inputs = nil
	for _, v := range newInputs {
		v.Input = true
		c.Inputs = append(c.Inputs, v)
	}
	c.RemoveDead()
	for _, v := range oldInputs {
		if cstop[v] {
			continue
		}
		if len(v.Consumers) > 0 || v.output {
			c.Inputs = append(c.Inputs, v)
		} else {
			v.Input = false
			if v.Init == nil && v.Producer == nil {
				delete(c.values, v.Name)
			}
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("graph: extract %v -> %v: %w", inputs, outputs, err)
	}
	return c, nil
}
