package graph

import (
	"fmt"
	"math/rand/v2"
)

// RenameOptions controls RenameAll.
type RenameOptions struct {
	// KeepIO keeps the names of graph inputs and outputs (the model's interface).
	KeepIO bool
	// Seed, when non-zero, draws the new names' numbers in a random order (a
	// permutation seeded by Seed) instead of the topological order, so names carry
	// no hint of position either.
	Seed uint64
}

// Renaming maps old names to new ones.
type Renaming struct {
	Values map[string]string // value and initializer names
	Nodes  map[string]string // node names (nameless nodes get a name too, keyed "#index")
}

// RenameAll replaces every node, value and initializer name with a meaningless one
// ("n17", "v42", "w3"), e.g. to check that an analysis does not depend on names. It
// returns the mapping from old to new names.
func (g *Graph) RenameAll(opt RenameOptions) (*Renaming, error) {
	order, err := g.TopoOrder()
	if err != nil {
		return nil, err
	}
	for _, n := range order {
		for _, v := range n.Implicit {
			return nil, fmt.Errorf("graph: rename all: node %s has a subgraph reading %q", n, v.Name)
		}
	}
	var vals []*Value
	seen := map[*Value]bool{}
	add := func(v *Value) {
		if v != nil && !seen[v] {
			seen[v] = true
			vals = append(vals, v)
		}
	}
	for _, v := range g.Inputs {
		add(v)
	}
	for _, v := range g.inits {
		add(v)
	}
	for _, n := range order {
		for _, v := range n.Inputs {
			add(v)
		}
		for _, v := range n.Outputs {
			add(v)
		}
	}
	for _, v := range g.Outputs {
		add(v)
	}
	perm := func(k int) []int {
		p := make([]int, k)
		for i := range p {
			p[i] = i
		}
		if opt.Seed != 0 {
			r := rand.New(rand.NewPCG(opt.Seed, 0x5eed))
			r.Shuffle(k, func(i, j int) { p[i], p[j] = p[j], p[i] })
		}
		return p
	}
	ren := &Renaming{Values: map[string]string{}, Nodes: map[string]string{}}
	vp := perm(len(vals))
	// Two phases so that new names never collide with old ones.
	type pending struct {
		v    *Value
		name string
	}
	var todo []pending
	for i, v := range vals {
		if opt.KeepIO && (v.Input || v.output) {
			continue
		}
		prefix := "v"
		if v.Init != nil {
			prefix = "w"
		}
		todo = append(todo, pending{v, fmt.Sprintf("%s%d", prefix, vp[i])})
	}
	olds := make([]string, len(todo))
	for i, p := range todo {
		olds[i] = p.v.Name
		if err := g.Rename(p.v, fmt.Sprintf("\x00tmp%d", i)); err != nil {
			return nil, err
		}
	}
	for i, p := range todo {
		name := p.name
		for g.Has(name) { // a kept I/O name may look like a new one
			name += "_"
		}
		if err := g.Rename(p.v, name); err != nil {
			return nil, err
		}
		ren.Values[olds[i]] = name
	}
	np := perm(len(order))
	for i, n := range order {
		key := n.Name
		if key == "" {
			key = fmt.Sprintf("#%d", n.Index)
		}
		n.Name = fmt.Sprintf("n%d", np[i])
		ren.Nodes[key] = n.Name
	}
	return ren, nil
}

// Shuffle reorders the nodes into another valid topological order drawn with seed:
// analyses must not depend on the exporter's node order.
func (g *Graph) Shuffle(seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0x5))
	for _, n := range g.Nodes {
		n.seq = int(r.Int32())
	}
	err := g.Sort()
	// Keep the shuffled order as the new tie-break, so later sorts keep it.
	for i, n := range g.Nodes {
		n.seq = i
	}
	return err
}
