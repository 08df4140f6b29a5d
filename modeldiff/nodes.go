package modeldiff

import (
	"slices"
	"sort"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// nodeKeys gives each node the key it is matched by: its name, or for an
// unnamed node its op type and first output; a repeated key gets "#2", "#3"...
func nodeKeys(nodes []*pb.NodeProto) []string {
	keys := make([]string, len(nodes))
	seen := map[string]int{}
	for i, n := range nodes {
		k := n.GetName()
		if k == "" {
			out := ""
			if len(n.GetOutput()) > 0 {
				out = n.GetOutput()[0]
			}
			k = "(" + opName(n) + " → " + out + ")"
		}
		seen[k]++
		if c := seen[k]; c > 1 {
			k += "#" + strconv.Itoa(c)
		}
		keys[i] = k
	}
	return keys
}

func opName(n *pb.NodeProto) string {
	if d := n.GetDomain(); d != "" && d != "ai.onnx" {
		return d + ":" + n.GetOpType()
	}
	return n.GetOpType()
}

func describeNode(n *pb.NodeProto) Node {
	return Node{
		Name:    n.GetName(),
		Op:      opName(n),
		Inputs:  append([]string{}, n.GetInput()...),
		Outputs: append([]string{}, n.GetOutput()...),
	}
}

// nodeDiff compares the nodes; order reports that the nodes are the same but
// listed in another order.
func nodeDiff(a, b []*pb.NodeProto) (d NodeDiff, order bool) {
	d = NodeDiff{Ops: []OpCount{}, Lists: emptyLists[Node, NodeChange]()}
	ca, cb := map[string]int{}, map[string]int{}
	for _, n := range a {
		ca[opName(n)]++
	}
	for _, n := range b {
		cb[opName(n)]++
	}
	ops := map[string]bool{}
	for op := range ca {
		ops[op] = true
	}
	for op := range cb {
		ops[op] = true
	}
	for op := range ops {
		if ca[op] != cb[op] {
			d.Ops = append(d.Ops, OpCount{Op: op, A: ca[op], B: cb[op]})
		}
	}
	sort.Slice(d.Ops, func(i, j int) bool { return d.Ops[i].Op < d.Ops[j].Op })

	ka, kb := nodeKeys(a), nodeKeys(b)
	idxA := make(map[string]int, len(a))
	for i, k := range ka {
		idxA[k] = i
	}
	inB := make(map[string]bool, len(b))
	var matchedA []int // A's index of each matched node, in B's order
	for j, k := range kb {
		inB[k] = true
		i, ok := idxA[k]
		if !ok {
			d.Added = append(d.Added, describeNode(b[j]))
			continue
		}
		matchedA = append(matchedA, i)
		if parts := nodeParts(a[i], b[j]); len(parts) > 0 {
			d.Changed = append(d.Changed, NodeChange{Name: b[j].GetName(), Parts: parts, A: describeNode(a[i]), B: describeNode(b[j])})
		}
	}
	for i, k := range ka {
		if !inB[k] {
			d.Removed = append(d.Removed, describeNode(a[i]))
		}
	}
	if len(d.Added)+len(d.Removed)+len(d.Changed) == 0 {
		order = !slices.IsSorted(matchedA)
	}
	return d, order
}

// nodeParts says how two nodes of the same key differ.
func nodeParts(a, b *pb.NodeProto) []string {
	var parts []string
	if opName(a) != opName(b) {
		parts = append(parts, "op")
	}
	if !slices.Equal(a.GetInput(), b.GetInput()) {
		parts = append(parts, "inputs")
	}
	if !slices.Equal(a.GetOutput(), b.GetOutput()) {
		parts = append(parts, "outputs")
	}
	if !sameAttributes(a.GetAttribute(), b.GetAttribute()) {
		parts = append(parts, "attributes")
	}
	if a.GetDocString() != b.GetDocString() {
		parts = append(parts, "doc_string")
	}
	return parts
}

// sameAttributes compares attributes by name, in any order.
func sameAttributes(a, b []*pb.AttributeProto) bool {
	if len(a) != len(b) {
		return false
	}
	byName := make(map[string]*pb.AttributeProto, len(a))
	for _, x := range a {
		byName[x.GetName()] = x
	}
	for _, y := range b {
		x, ok := byName[y.GetName()]
		if !ok || !proto.Equal(x, y) {
			return false
		}
	}
	return true
}
