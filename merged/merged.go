// Package merged reads and writes optimum's legacy merged decoder
// (decoder_model_merged.onnx): one If node on the bool input
// use_cache_branch, whose then_branch is the decoder with past (the graph of
// decoder_with_past_model.onnx) and whose else_branch the decoder without
// (decoder_model.onnx), over initializers shared in the outer graph.
//
// Split takes such a model apart into the two plain models its branches
// hold; Join puts two plain models together as optimum's merge_decoders does
// (docs/design/formats.md, section 3, records the code it follows). Pruning
// edits the two halves alike and joins them again.
package merged

import (
	"fmt"
	"slices"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// CondInput is the merged model's bool input that picks the branch: true
// runs the decoder with past.
const CondInput = "use_cache_branch"

// Pair is a merged decoder taken apart.
type Pair struct {
	// NoPast is the else branch as a plain model (decoder_model.onnx):
	// the outer graph's inputs and initializers it reads, its own
	// initializers and nodes, its outputs.
	NoPast *pb.ModelProto
	// WithPast is the then branch as a plain model (decoder_with_past_model.onnx).
	WithPast *pb.ModelProto
}

// Is reports whether m is a merged decoder: its main graph is one If node
// (default domain) on a graph input named use_cache_branch.
func Is(m *pb.ModelProto) bool {
	_, err := ifNode(m)
	return err == nil
}

// ifNode returns m's If node, or why m is not a merged decoder.
func ifNode(m *pb.ModelProto) (*pb.NodeProto, error) {
	g := m.GetGraph()
	if len(g.GetNode()) != 1 {
		return nil, fmt.Errorf("merged decoder: the main graph has %d nodes, want one If", len(g.GetNode()))
	}
	n := g.GetNode()[0]
	if n.GetOpType() != "If" || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") {
		return nil, fmt.Errorf("merged decoder: the main graph's node is %s, want If", n.GetOpType())
	}
	if len(n.GetInput()) != 1 || n.GetInput()[0] != CondInput {
		return nil, fmt.Errorf("merged decoder: the If reads %q, want %q", n.GetInput(), CondInput)
	}
	if !slices.ContainsFunc(g.GetInput(), func(vi *pb.ValueInfoProto) bool { return vi.GetName() == CondInput }) {
		return nil, fmt.Errorf("merged decoder: %q is no graph input", CondInput)
	}
	return n, nil
}

// branch returns the If's attribute name as a graph.
func branch(n *pb.NodeProto, name string) (*pb.GraphProto, error) {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name && a.G != nil {
			return a.G, nil
		}
	}
	return nil, fmt.Errorf("merged decoder: the If has no %s", name)
}

// Split takes the merged decoder m apart. The models share m's tensors and
// nodes (read-only, as graph.Graph shares them).
func Split(m *pb.ModelProto) (*Pair, error) {
	n, err := ifNode(m)
	if err != nil {
		return nil, err
	}
	var p Pair
	for _, b := range []struct {
		attr string
		dst  **pb.ModelProto
	}{{"else_branch", &p.NoPast}, {"then_branch", &p.WithPast}} {
		g, err := branch(n, b.attr)
		if err != nil {
			return nil, err
		}
		if *b.dst, err = plain(m, g, b.attr); err != nil {
			return nil, err
		}
	}
	if len(p.NoPast.GetGraph().GetOutput()) != len(p.WithPast.GetGraph().GetOutput()) {
		return nil, fmt.Errorf("merged decoder: the branches have %d and %d outputs", len(p.NoPast.GetGraph().GetOutput()), len(p.WithPast.GetGraph().GetOutput()))
	}
	return &p, nil
}

// plain makes branch g of the merged model m a model of its own: m's inputs
// and initializers that g reads (in m's order), then g's own.
func plain(m *pb.ModelProto, g *pb.GraphProto, attr string) (*pb.ModelProto, error) {
	if len(g.GetInput()) > 0 {
		return nil, fmt.Errorf("merged decoder: %s declares inputs", attr)
	}
	refs := map[string]bool{}
	for _, r := range graph.OuterRefs([]*pb.AttributeProto{onnx.AttrGraph(attr, g)}) {
		refs[r] = true
	}
	outer := m.GetGraph()
	pg := &pb.GraphProto{Name: g.Name, Node: g.GetNode(), Output: g.GetOutput(), ValueInfo: g.GetValueInfo()}
	for _, vi := range outer.GetInput() {
		if refs[vi.GetName()] {
			pg.Input = append(pg.Input, vi)
			delete(refs, vi.GetName())
		}
	}
	for _, t := range outer.GetInitializer() {
		if refs[t.GetName()] {
			pg.Initializer = append(pg.Initializer, t)
			delete(refs, t.GetName())
		}
	}
	if len(refs) > 0 {
		names := make([]string, 0, len(refs))
		for r := range refs {
			names = append(names, r)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("merged decoder: %s reads %q, which the outer graph does not define", attr, names)
	}
	pg.Initializer = append(pg.Initializer, g.GetInitializer()...)
	return &pb.ModelProto{
		IrVersion:       m.IrVersion,
		OpsetImport:     m.GetOpsetImport(),
		ProducerName:    m.ProducerName,
		ProducerVersion: m.ProducerVersion,
		Domain:          m.Domain,
		ModelVersion:    m.ModelVersion,
		MetadataProps:   m.GetMetadataProps(),
		Functions:       m.GetFunctions(),
		Graph:           pg,
	}, nil
}
