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

// Named is what each error of this package carries: the names of at most a
// few offending items (nodes, values, uses or problems) and how many there are.
type Named struct {
	// Names names at most maxNamed of the items.
	Names []string
	// N is the number of items.
	N int
}

// named keeps the first few of all.
func named(all []string) Named { return Named{Names: bounded(all), N: len(all)} }

// describe writes "graph: " + what (with N in place of its %d) + the names.
func (e Named) describe(what string) string {
	return "graph: " + fmt.Sprintf(what, e.N) + ": " + list(e.Names, e.N)
}

// UndefinedError reports node inputs that no node, graph input or initializer
// defines; its Names are uses, as `node reads "value"`.
type UndefinedError struct{ Named }

func (e *UndefinedError) Error() string { return e.describe("%d undefined input(s)") }

// CycleError reports nodes that cannot be ordered because they depend on each
// other; its Names are nodes on or behind a cycle.
type CycleError struct{ Named }

func (e *CycleError) Error() string { return e.describe("cycle: %d node(s) cannot be ordered") }

// OutputError reports graph outputs that nothing computes.
type OutputError struct{ Named }

func (e *OutputError) Error() string { return e.describe("%d graph output(s) not produced") }

// DuplicateError reports a name defined more than once.
type DuplicateError struct{ Named }

func (e *DuplicateError) Error() string { return e.describe("%d value(s) defined more than once") }

// InvariantError reports an inconsistency of the IR itself (a broken producer or
// consumer link): a bug in a pass, not in the model.
type InvariantError struct{ Named }

func (e *InvariantError) Error() string { return e.describe("IR inconsistent (%d problem(s))") }

// TopoOrder returns the nodes in a deterministic topological order: among the nodes
// ready to run, the one created first (source position, then rewrite order) comes
// first, so an already sorted graph keeps its order. It returns a *CycleError when
// some nodes depend on each other; undefined inputs do not block ordering.
func (g *Graph) TopoOrder() ([]*Node, error) {
	pos := make(map[*Node]int, len(g.Nodes))
	for i, n := range g.Nodes {
		pos[n] = i
	}
	next := func(i int) []int {
		var r []int
		for _, v := range g.Nodes[i].Outputs {
			if v == nil {
				continue
			}
			for _, c := range v.Consumers {
				if p, ok := pos[c]; ok && !c.dead {
					r = append(r, p) // i itself when it reads its own output: a cycle of one
				}
			}
		}
		return r
	}
	idx, err := SortIndices(len(g.Nodes), next,
		func(a, b int) bool { return g.Nodes[a].seq < g.Nodes[b].seq },
		func(i int) string { return g.Nodes[i].String() })
	order := make([]*Node, len(idx))
	for k, i := range idx {
		order[k] = g.Nodes[i]
	}
	return order, err
}

// SortIndices is the topological sort behind TopoOrder, for callers that number
// their own nodes 0..n-1 (the runtime's compiled plan). next(i) lists the items
// that read what i computes, so must come after it (repeats are ignored; i
// itself makes a cycle of one). Kahn's algorithm: among the items ready, the
// first by less comes first (less nil: the lowest number), so items already in a
// valid order keep it; items that become ready together enter the heap in the
// order next lists them. When some items depend on each other, it returns the
// items it could order and a *CycleError naming (with name) the others in index
// order.
func SortIndices(n int, next func(i int) []int, less func(a, b int) bool, name func(i int) string) ([]int, error) {
	indeg := make([]int, n)
	succ := make([][]int, n)
	mark := make([]int, n) // mark[c] == i+1: c is already a successor of i
	for i := range n {
		for _, c := range next(i) {
			if mark[c] == i+1 {
				continue
			}
			mark[c] = i + 1
			succ[i] = append(succ[i], c)
			indeg[c]++
		}
	}
	if less == nil {
		less = func(a, b int) bool { return a < b }
	}
	h := &indexHeap{less: less}
	for i := range n {
		if indeg[i] == 0 {
			h.a = append(h.a, i)
		}
	}
	heap.Init(h)
	order := make([]int, 0, n)
	for h.Len() > 0 {
		i := heap.Pop(h).(int)
		order = append(order, i)
		for _, c := range succ[i] {
			indeg[c]--
			if indeg[c] == 0 {
				heap.Push(h, c)
			}
		}
	}
	if len(order) < n {
		var names []string
		for i := range n {
			if indeg[i] > 0 {
				names = append(names, name(i))
			}
		}
		return order, &CycleError{named(names)}
	}
	return order, nil
}

// indexHeap is a min-heap of item numbers under less.
type indexHeap struct {
	a    []int
	less func(a, b int) bool
}

func (h *indexHeap) Len() int           { return len(h.a) }
func (h *indexHeap) Less(i, j int) bool { return h.less(h.a[i], h.a[j]) }
func (h *indexHeap) Swap(i, j int)      { h.a[i], h.a[j] = h.a[j], h.a[i] }
func (h *indexHeap) Push(x any)         { h.a = append(h.a, x.(int)) }
func (h *indexHeap) Pop() any {
	n := h.a[len(h.a)-1]
	h.a = h.a[:len(h.a)-1]
	return n
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
		errs = append(errs, &UndefinedError{Named{Names: undef, N: n}})
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
		errs = append(errs, &OutputError{named(missing)})
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
		return &InvariantError{Named{Names: probs, N: n}}
	}
	return nil
}
