package main

import (
	"fmt"
	"io"
	"sort"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// inspectMerged describes optimum's merged decoder: its two branches.
type inspectMerged struct {
	// Cond is the bool input that picks the branch.
	Cond string `json:"cond"`
	// Layers are found in the no-past branch (else_branch); the with-past
	// branch (then_branch) has the same stack over the same weights.
	LayersFrom string `json:"layers_from"`
	// NoPastOps and WithPastOps count the ops of each branch.
	NoPastOps   map[string]int `json:"no_past_op_counts"`
	WithPastOps map[string]int `json:"with_past_op_counts"`
}

// findLayers finds m's decoder stack; in optimum's merged decoder, the
// no-past branch's, once both branches are found to be one stack.
func (r *inspectReport) findLayers(m *pb.ModelProto) (*discover.Stack, error) {
	if !merged.Is(m) {
		return discover.Find(m)
	}
	p, err := merged.Split(m)
	if err != nil {
		return nil, err
	}
	r.Merged = &inspectMerged{Cond: merged.CondInput, LayersFrom: "else_branch (no past)",
		NoPastOps: opCounts(p.NoPast.GetGraph()), WithPastOps: opCounts(p.WithPast.GetGraph())}
	br, err := discover.FindMerged(p)
	if err != nil {
		return nil, err
	}
	return br.NoPast, nil
}

// opCounts counts the ops of g's nodes (subgraphs not entered), those of
// other domains than ai.onnx as DOMAIN:OP.
func opCounts(g *pb.GraphProto) map[string]int {
	c := map[string]int{}
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			op = d + ":" + op
		}
		c[op]++
	}
	return c
}

func (r *inspectReport) writeMerged(w io.Writer) {
	if r.Merged == nil {
		return
	}
	fmt.Fprintf(w, "\noptimum merged decoder\tIf on %s; layers from the %s, the with-past branch checked to be the same stack\n", r.Merged.Cond, r.Merged.LayersFrom)
	for _, b := range []struct {
		name string
		ops  map[string]int
	}{{"no past (else)", r.Merged.NoPastOps}, {"with past (then)", r.Merged.WithPastOps}} {
		names := make([]string, 0, len(b.ops))
		for op := range b.ops {
			names = append(names, op)
		}
		sort.Strings(names)
		fmt.Fprintf(w, "  %s ops\t", b.name)
		for i, op := range names {
			if i > 0 {
				fmt.Fprint(w, " ")
			}
			fmt.Fprintf(w, "%s:%d", op, b.ops[op])
		}
		fmt.Fprintln(w)
	}
}
