package rewrite_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
)

// TestRefoldFunctions: a rewrite of the inlined graph goes back to
// dynamo_export's calls where the bodies are intact, and is refused (the
// caller writes it flat) where they are not.
func TestRefoldFunctions(t *testing.T) {
	orig, err := modelgen.BuildDynamo(modelgen.DynamoConfig{Layers: 3, Hidden: 32, Heads: 2, Vocab: 64, Functions: true})
	if err != nil {
		t.Fatal(err)
	}
	flat, sites, err := onnx.InlineFunctionsSites(orig)
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 3 {
		t.Fatalf("%d call sites, want 3", len(sites))
	}
	calls := func(m *pb.ModelProto) []string {
		var c []string
		for _, n := range m.GetGraph().GetNode() {
			if n.GetDomain() != "" {
				c = append(c, n.GetOpType())
			}
		}
		return c
	}
	t.Run("unchanged", func(t *testing.T) {
		before := snapshot(flat)
		got, err := rewrite.RefoldFunctions(orig, flat)
		if err != nil {
			t.Fatal(err)
		}
		if snapshot(flat) != before {
			t.Error("the rewritten model was modified")
		}
		if len(got.Graph.Node) != len(orig.Graph.Node) || len(got.Functions) != len(orig.Functions) {
			t.Errorf("%d nodes, %d functions; the original %d and %d", len(got.Graph.Node), len(got.Functions), len(orig.Graph.Node), len(orig.Functions))
		}
		if strings.Join(calls(got), " ") != strings.Join(calls(orig), " ") {
			t.Errorf("calls %v, want %v", calls(got), calls(orig))
		}
	})
	// without drops a site's nodes and edit changes what is left.
	without := func(site int, edit func(*pb.ModelProto)) *pb.ModelProto {
		m := proto.Clone(flat).(*pb.ModelProto)
		drop := map[string]bool{}
		if site >= 0 {
			for _, n := range sites[site].Nodes {
				drop[n.GetName()] = true
			}
		}
		var keep []*pb.NodeProto
		for _, n := range m.Graph.Node {
			if !drop[n.GetName()] {
				keep = append(keep, n)
			}
		}
		m.Graph.Node = keep
		if edit != nil {
			edit(m)
		}
		return m
	}
	t.Run("layer removed", func(t *testing.T) {
		// Layer 2 goes: the final norm reads layer 1's output instead.
		out1 := sites[1].Call.GetOutput()[0]
		out2 := sites[2].Call.GetOutput()[0]
		m := without(2, func(m *pb.ModelProto) {
			for _, n := range m.Graph.Node {
				for i, in := range n.Input {
					if in == out2 {
						n.Input[i] = out1
					}
				}
			}
			m.Graph.Output = m.Graph.Output[:5] // logits and the presents of layers 0, 1
		})
		got, err := rewrite.RefoldFunctions(orig, m)
		if err != nil {
			t.Fatal(err)
		}
		if c := calls(got); len(c) != 2 || strings.Contains(strings.Join(c, " "), "layers_2") {
			t.Errorf("calls %v, want layers 0 and 1", c)
		}
		for _, f := range got.Functions {
			if strings.Contains(f.GetName(), "layers_2") {
				t.Errorf("function %s kept: nothing calls it", f.GetName())
			}
		}
		if _, err := onnx.InlineFunctions(got); err != nil {
			t.Errorf("the refolded model does not inline: %v", err)
		}
	})
	for _, c := range []struct {
		name string
		m    *pb.ModelProto
		want string
	}{
		{"partly kept", without(-1, func(m *pb.ModelProto) {
			for i, n := range m.Graph.Node {
				if n.GetName() == sites[1].Nodes[3].GetName() {
					m.Graph.Node = append(m.Graph.Node[:i:i], m.Graph.Node[i+1:]...)
					return
				}
			}
		}), "nodes kept"},
		{"changed", without(-1, func(m *pb.ModelProto) {
			for _, n := range m.Graph.Node {
				if n.GetName() == sites[0].Nodes[0].GetName() {
					n.OpType = proto.String("Identity")
				}
			}
		}), "was changed"},
		{"read from outside", without(-1, func(m *pb.ModelProto) {
			inner := sites[0].Nodes[0].GetOutput()[0]
			m.Graph.Output = append(m.Graph.Output, &pb.ValueInfoProto{Name: proto.String(inner)})
		}), "inside a function body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := rewrite.RefoldFunctions(orig, c.m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}
