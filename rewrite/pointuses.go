package rewrite

import (
	"fmt"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/graph"
)

// PointUses makes every use of parameter p read v instead, through the nodes
// the use read p through (discover.Use.Via). Identity nodes are skipped. A
// Transpose or Cast is rewired to read the new value itself when inPlace says
// so (it is given the node and the node reading its output), and otherwise
// copied by copyNode and the copy read instead; a nil inPlace copies them
// all. node returns the graph node at a discover index, nil when there is
// none. The merge, the width change and recovery's written layer all repoint
// their parameters this way; they differ in what they rewire and how they
// name the copies.
func PointUses(g *graph.Graph, node func(index int) *graph.Node, p discover.Param, v *graph.Value,
	inPlace func(n, next *graph.Node) bool, copyNode func(n *graph.Node) (*graph.Node, error)) error {
	for _, u := range p.Uses {
		use := node(u.Node)
		if use == nil || u.Input >= len(use.Inputs) {
			return fmt.Errorf("use by node %d not found", u.Node)
		}
		cur := v
		for k, vi := range u.Via {
			n := node(vi)
			if n == nil {
				return fmt.Errorf("node %d between the tensor and its use not found", vi)
			}
			if n.Op == "Identity" {
				continue
			}
			next := use
			if k+1 < len(u.Via) {
				next = node(u.Via[k+1])
			}
			if inPlace != nil && inPlace(n, next) {
				g.SetInput(n, 0, cur)
				cur = n.Outputs[0]
				continue
			}
			c, err := copyNode(n)
			if err != nil {
				return err
			}
			g.SetInput(c, 0, cur)
			cur = c.Outputs[0]
		}
		g.SetInput(use, u.Input, cur)
	}
	return nil
}

// onlyReader reports whether n is the only node reading v (and v is no graph output).
func onlyReader(v *graph.Value, n *graph.Node) bool {
	return !v.IsOutput() && len(v.Consumers) == 1 && v.Consumers[0] == n
}

// OnlyReader reports whether node next is all that reads n's single output,
// so that n may be rewired to read another value without changing what any
// other node reads.
func OnlyReader(n, next *graph.Node) bool {
	return len(n.Outputs) == 1 && n.Outputs[0] != nil && onlyReader(n.Outputs[0], next)
}

// CopyNode adds a copy of n named name, each output renamed to a fresh
// output name + suffix (nil outputs stay omitted).
func CopyNode(g *graph.Graph, n *graph.Node, name, suffix string) (*graph.Node, error) {
	outs := make([]string, len(n.Outputs))
	for i, o := range n.Outputs {
		if o != nil {
			outs[i] = g.UniqueName(o.Name + suffix)
		}
	}
	return g.CloneNode(n, name, outs)
}

// nodeAt returns a lookup of nodes by discover index in nodes, the graph's
// nodes as loaded (nil out of range).
func nodeAt(nodes []*graph.Node) func(int) *graph.Node {
	return func(i int) *graph.Node {
		if i < 0 || i >= len(nodes) {
			return nil
		}
		return nodes[i]
	}
}
