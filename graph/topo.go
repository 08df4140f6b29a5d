package graph

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// maxNamed bounds how many nodes or values an error message names.
const maxNamed = 5

func bounded(names []string) []string {
	if len(names) > maxNamed {
		return names[:maxNamed:maxNamed]
	}
	return names
}

func list(names []string, n int) string {
	var b strings.Builder
	for i, s := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s)
	}
	if n > len(names) {
		fmt.Fprintf(&b, " and %d more", n-len(names))
	}
	return b.String()
}

// UndefinedError reports node inputs that no node, graph input or initializer defines.
type UndefinedError struct {
	// Uses names at most a few offending uses as `node reads "value"`.
	Uses []string
	// N is the number of offending uses.
	N int
}

func (e *UndefinedError) Error() string {
	return fmt.Sprintf("graph: %d undefined input(s): %s", e.N, list(e.Uses, e.N))
}

// CycleError reports nodes that cannot be ordered because they depend on each other.
type CycleError struct {
	// Nodes names at most a few nodes on or behind a cycle.
	Nodes []string
	// N is the number of nodes that could not be ordered.
	N int
}

func (e *CycleError) Error() string {
	return fmt.Sprintf("graph: cycle: %d node(s) cannot be ordered: %s", e.N, list(e.Nodes, e.N))
}

// OutputError reports graph outputs that nothing computes.
type OutputError struct {
	Outputs []string
	N       int
}

func (e *OutputError) Error() string {
	return fmt.Sprintf("graph: %d graph output(s) not produced: %s", e.N, list(e.Outputs, e.N))
}

// DuplicateError reports a name defined more than once.
type DuplicateError struct {
	Names []string
	N     int
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("graph: %d value(s) defined more than once: %s", e.N, list(e.Names, e.N))
}

// InvariantError reports an inconsistency of the IR itself (a broken producer or
// consumer link): a bug in a pass, not in the model.
type InvariantError struct {
	Problems []string
	N        int
}

func (e *InvariantError) Error() string {
	return fmt.Sprintf("graph: IR inconsistent (%d problem(s)): %s", e.N, list(e.Problems, e.N))
}

type nodeHeap []*Node

func (h nodeHeap) Len() int           { return len(h) }
func (h nodeHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h nodeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)        { *h = append(*h, x.(*Node)) }
func (h *nodeHeap) Pop() any {
	old := *h
	n := old[len(old)-1]
	*h = old[:len(old)-1]
	return n
}

// TopoOrder returns the nodes in a deterministic topological order: among the nodes
// ready to run, the one created first (source position, then rewrite order) comes
// first, so an already sorted graph keeps its order. It returns a *CycleError when
// some nodes depend on each other; undefined inputs do not block ordering.
func (g *Graph) TopoOrder() ([]*Node, error) {
	indeg := make(map[*Node]int, len(g.Nodes))
	for _, n := range g.Nodes {
		d := 0
		seen := map[*Node]bool{}
		count := func(v *Value) {
			if v != nil && v.Producer != nil && !v.Producer.dead && v.Producer != n && !seen[v.Producer] {
				seen[v.Producer] = true
				d++
			}
		}
		for _, v := range n.Inputs {
			count(v)
		}
		for _, v := range n.Implicit {
			count(v)
		}
		for _, v := range n.Inputs {
			if v != nil && v.Producer == n {
				d++ // reads its own output: a cycle of one
			}
		}
		indeg[n] = d
	}
	h := nodeHeap{}
	for _, n := range g.Nodes {
		if indeg[n] == 0 {
			h = append(h, n)
		}
	}
	heap.Init(&h)
	order := make([]*Node, 0, len(g.Nodes))
	for h.Len() > 0 {
		n := heap.Pop(&h).(*Node)
		order = append(order, n)
		done := map[*Node]bool{}
		for _, v := range n.Outputs {
			if v == nil {
				continue
			}
			for _, c := range v.Consumers {
				if c.dead || done[c] {
					continue
				}
				if _, ok := indeg[c]; !ok {
					continue
				}
				done[c] = true
				indeg[c]--
				if indeg[c] == 0 {
					heap.Push(&h, c)
				}
			}
		}
	}
	if len(order) < len(g.Nodes) {
		var names []string
		for _, n := range g.Nodes {
			if indeg[n] > 0 {
				names = append(names, n.String())
			}
		}
		return order, &CycleError{Nodes: bounded(names), N: len(names)}
	}
	return order, nil
}

// Sort puts the nodes in TopoOrder.
func (g *Graph) Sort() error {
	order, err := g.TopoOrder()
	if err != nil {
		return err
	}
	g.Nodes = order
	return nil
}

// Validate checks that every node input is defined, that the nodes have no cycle,
// that every graph output is produced, and that the IR's links are consistent. The
// error joins one typed error per kind of problem (UndefinedError, CycleError,
// OutputError, InvariantError); each names a bounded number of nodes.
func (g *Graph) Validate() error {
	var errs []error
	if err := g.checkLinks(); err != nil {
		errs = append(errs, err)
	}
	var undef []string
	n := 0
	for _, node := range g.Nodes {
		for _, v := range append(slices.Clip(node.Inputs), node.Implicit...) {
			if v != nil && !g.defined(v) {
				n++
				if len(undef) < maxNamed {
					undef = append(undef, fmt.Sprintf("%s reads %q", node, v.Name))
				}
			}
		}
	}
	if n > 0 {
		errs = append(errs, &UndefinedError{Uses: undef, N: n})
	}
	if _, err := g.TopoOrder(); err != nil {
		errs = append(errs, err)
	}
	var missing []string
	for _, v := range g.Outputs {
		if !g.defined(v) {
			missing = append(missing, v.Name)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, &OutputError{Outputs: bounded(missing), N: len(missing)})
	}
	return errors.Join(errs...)
}

func (g *Graph) defined(v *Value) bool {
	return v.Init != nil || v.Input || (v.Producer != nil && !v.Producer.dead)
}

// checkLinks verifies producer/consumer links and the name table.
func (g *Graph) checkLinks() error {
	var probs []string
	n := 0
	bad := func(format string, args ...any) {
		n++
		if len(probs) < maxNamed {
			probs = append(probs, fmt.Sprintf(format, args...))
		}
	}
	inGraph := make(map[*Node]bool, len(g.Nodes))
	for _, node := range g.Nodes {
		if inGraph[node] {
			bad("node %s listed twice", node)
		}
		inGraph[node] = true
	}
	check := func(v *Value, what string) {
		if g.values[v.Name] != v {
			bad("%s %q is not the graph's value of that name", what, v.Name)
		}
	}
	for _, node := range g.Nodes {
		if node.dead {
			bad("removed node %s still listed", node)
		}
		for _, v := range node.Inputs {
			if v == nil {
				continue
			}
			check(v, "input")
			if !slices.Contains(v.Consumers, node) {
				bad("%s reads %q but is not among its consumers", node, v.Name)
			}
		}
		for _, v := range node.Implicit {
			check(v, "implicit input")
			if !slices.Contains(v.Consumers, node) {
				bad("%s reads %q implicitly but is not among its consumers", node, v.Name)
			}
		}
		for _, v := range node.Outputs {
			if v == nil {
				continue
			}
			check(v, "output")
			if v.Producer != node {
				bad("%s writes %q whose producer is another node", node, v.Name)
			}
			if v.Init != nil || v.Input {
				bad("%s writes %q, also an initializer or graph input", node, v.Name)
			}
		}
	}
	for name, v := range g.values {
		if v.Name != name {
			bad("value %q registered as %q", v.Name, name)
		}
		for _, c := range v.Consumers {
			if !inGraph[c] {
				bad("value %q lists consumer %s that is not in the graph", name, c)
			} else if !c.reads(v) {
				bad("value %q lists consumer %s that does not read it", name, c)
			}
		}
		if v.Producer != nil && !inGraph[v.Producer] {
			bad("value %q has producer %s that is not in the graph", name, v.Producer)
		}
	}
	for _, v := range g.inits {
		check(v, "initializer")
		if v.Init == nil {
			bad("initializer %q has no tensor", v.Name)
		}
	}
	for _, v := range g.Inputs {
		check(v, "graph input")
		if !v.Input {
			bad("graph input %q not marked as input", v.Name)
		}
	}
	for _, v := range g.Outputs {
		check(v, "graph output")
		if !v.output {
			bad("graph output %q not marked as output", v.Name)
		}
	}
	if n > 0 {
		return &InvariantError{Problems: probs, N: n}
	}
	return nil
}
