package onnx

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

func inlNode(name, op, domain string, in, out []string, attrs ...*pb.AttributeProto) *pb.NodeProto {
	n := &pb.NodeProto{Name: proto.String(name), OpType: proto.String(op), Input: in, Output: out, Attribute: attrs}
	if domain != "" {
		n.Domain = proto.String(domain)
	}
	return n
}

func refAttr(name, ref string) *pb.AttributeProto {
	return &pb.AttributeProto{Name: proto.String(name), Type: pb.AttributeProto_INT.Enum(), RefAttrName: proto.String(ref)}
}

func opset(domain string, v int64) *pb.OperatorSetIdProto {
	return &pb.OperatorSetIdProto{Domain: proto.String(domain), Version: proto.Int64(v)}
}

// withDefault adds FunctionProto.attribute_proto (field 11) as unknown bytes.
func withDefault(f *pb.FunctionProto, a *pb.AttributeProto) *pb.FunctionProto {
	b, _ := proto.Marshal(a)
	raw := protowire.AppendTag(nil, 11, protowire.BytesType)
	raw = protowire.AppendBytes(raw, b)
	f.ProtoReflect().SetUnknown(raw)
	return f
}

// softmaxFn is torchlib's aten_softmax shape: Softmax(self, axis=@dim), and
// a Mul by a value computed inside.
func softmaxFn() *pb.FunctionProto {
	return &pb.FunctionProto{Name: proto.String("softmax"), Domain: proto.String("lib"), Input: []string{"self"}, Output: []string{"result"},
		Attribute: []string{"dim"}, OpsetImport: []*pb.OperatorSetIdProto{opset("", 18)},
		Node: []*pb.NodeProto{
			inlNode("n0", "Softmax", "", []string{"self"}, []string{"tmp"}, refAttr("axis", "dim")),
			inlNode("n1", "Mul", "", []string{"tmp", "tmp"}, []string{"result"}),
		}}
}

func TestInlineFunctions(t *testing.T) {
	layer := &pb.FunctionProto{Name: proto.String("Layer"), Domain: proto.String("pkg.m"), Input: []string{"x", "w"}, Output: []string{"y", "aux"},
		OpsetImport: []*pb.OperatorSetIdProto{opset("", 18), opset("lib", 1)},
		Node: []*pb.NodeProto{
			inlNode("mm", "MatMul", "", []string{"x", "w"}, []string{"h"}),
			inlNode("sm", "softmax", "lib", []string{"h"}, []string{"y"}, AttrInt("dim", -1)),
			inlNode("id", "Identity", "", []string{"h"}, []string{"aux"}),
		}}
	model := func(funcs ...*pb.FunctionProto) *pb.ModelProto {
		return &pb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: []*pb.OperatorSetIdProto{opset("", 18), opset("pkg.m", 1), opset("lib", 1)},
			Functions: funcs,
			Graph: &pb.GraphProto{Name: proto.String("g"),
				Input:       []*pb.ValueInfoProto{{Name: proto.String("a")}},
				Initializer: []*pb.TensorProto{{Name: proto.String("w0")}, {Name: proto.String("w1")}},
				Node: []*pb.NodeProto{
					inlNode("L0", "Layer", "pkg.m", []string{"a", "w0"}, []string{"b"}), // aux unused
					inlNode("L1", "Layer", "pkg.m", []string{"b", "w1"}, []string{"c", "L0/h"}),
				},
				Output: []*pb.ValueInfoProto{{Name: proto.String("c")}}}}
	}
	t.Run("flat", func(t *testing.T) {
		m := model(layer, softmaxFn())
		before := proto.Clone(m)
		got, err := InlineFunctions(m)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(m, before) {
			t.Error("the input model was modified")
		}
		if len(got.Functions) != 0 {
			t.Errorf("%d functions left", len(got.Functions))
		}
		var ops []string
		names := map[string]bool{}
		defined := map[string]bool{"a": true, "w0": true, "w1": true}
		for _, n := range got.Graph.Node {
			ops = append(ops, n.GetOpType())
			if names[n.GetName()] {
				t.Errorf("node name %q twice", n.GetName())
			}
			names[n.GetName()] = true
			for _, in := range n.Input {
				if !defined[in] {
					t.Errorf("%s reads %q before it is defined", n.GetName(), in)
				}
			}
			for _, o := range n.Output {
				if defined[o] {
					t.Errorf("%q defined twice", o)
				}
				defined[o] = true
			}
			if n.GetOpType() == "Softmax" {
				if a := n.GetAttribute(); len(a) != 1 || a[0].GetName() != "axis" || a[0].GetI() != -1 || a[0].RefAttrName != nil {
					t.Errorf("Softmax attributes %v, want axis=-1 from the call", a)
				}
			}
		}
		if want := "MatMul Softmax Mul Identity MatMul Softmax Mul Identity"; strings.Join(ops, " ") != want {
			t.Errorf("ops %v, want %s", ops, want)
		}
		if !defined["b"] || !defined["c"] {
			t.Error("the calls' outputs are not produced")
		}
		for _, o := range got.OpsetImport {
			if d := o.GetDomain(); d == "pkg.m" || d == "lib" {
				t.Errorf("opset import %s kept: no node is in it any more", d)
			}
		}
		// L1's second output is named L0/h in the graph: L0's inner h must not take it.
		if got.Graph.Node[0].Output[0] == "L0/h" {
			t.Error("an inner value took a name the graph uses")
		}
	})
	t.Run("default attribute", func(t *testing.T) {
		f := softmaxFn()
		withDefault(f, AttrInt("dim", 1))
		m := model(layer, f)
		m.Functions[0] = proto.Clone(layer).(*pb.FunctionProto)
		m.Functions[0].Node[1].Attribute = nil // the call gives no dim
		got, err := InlineFunctions(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range got.Graph.Node {
			if n.GetOpType() == "Softmax" && (len(n.Attribute) != 1 || n.Attribute[0].GetI() != 1) {
				t.Errorf("Softmax attributes %v, want the default axis=1", n.Attribute)
			}
		}
	})
	t.Run("no value", func(t *testing.T) {
		m := model(layer, softmaxFn())
		m.Functions[0].Node[1].Attribute = nil
		got, err := InlineFunctions(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range got.Graph.Node {
			if n.GetOpType() == "Softmax" && len(n.Attribute) != 0 {
				t.Errorf("Softmax attributes %v, want none (the op's default)", n.Attribute)
			}
		}
	})
	t.Run("none", func(t *testing.T) {
		m := model()
		if got, err := InlineFunctions(m); err != nil || got != m {
			t.Errorf("a model without functions: %v, same model %v", err, got == m)
		}
	})
	recursive := &pb.FunctionProto{Name: proto.String("Layer"), Domain: proto.String("pkg.m"), Input: []string{"x", "w"}, Output: []string{"y"},
		Node: []*pb.NodeProto{inlNode("self", "Layer", "pkg.m", []string{"x", "w"}, []string{"y"})}}
	otherOpset := proto.Clone(layer).(*pb.FunctionProto)
	otherOpset.OpsetImport[0] = opset("", 17)
	withGraph := proto.Clone(layer).(*pb.FunctionProto)
	withGraph.Node[2].Attribute = []*pb.AttributeProto{AttrGraph("then_branch", &pb.GraphProto{})}
	for _, c := range []struct {
		name  string
		funcs []*pb.FunctionProto
		want  string
	}{
		{"recursive", []*pb.FunctionProto{recursive}, "function pkg.m::Layer: calls nested deeper than 64"},
		{"opset", []*pb.FunctionProto{otherOpset, softmaxFn()}, "function pkg.m::Layer imports ai.onnx opset 17, the model opset 18"},
		{"subgraph", []*pb.FunctionProto{withGraph, softmaxFn()}, `function pkg.m::Layer: node "id": subgraph attributes`},
		{"twice", []*pb.FunctionProto{layer, layer}, "function pkg.m::Layer: defined twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := InlineFunctions(model(c.funcs...))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
	t.Run("too many inputs", func(t *testing.T) {
		m := model(layer, softmaxFn())
		m.Graph.Node[0].Input = append(m.Graph.Node[0].Input, "a")
		_, err := InlineFunctions(m)
		if want := fmt.Sprintf("node %q calls function pkg.m::Layer with 3 inputs", "L0"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	})
}

// FuzzInlineFunctions feeds mutated models with functions to
// InlineFunctions: it must never panic, and a model it inlines has no
// function left and, when the input's node names were unique, every node
// name once.
func FuzzInlineFunctions(f *testing.F) {
	layer := &pb.FunctionProto{Name: proto.String("Layer"), Domain: proto.String("pkg.m"), Input: []string{"x"}, Output: []string{"y"},
		OpsetImport: []*pb.OperatorSetIdProto{opset("", 18), opset("lib", 1)},
		Node:        []*pb.NodeProto{inlNode("sm", "softmax", "lib", []string{"x"}, []string{"y"}, AttrInt("dim", -1))}}
	m := &pb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: []*pb.OperatorSetIdProto{opset("", 18), opset("pkg.m", 1)},
		Functions: []*pb.FunctionProto{layer, withDefault(softmaxFn(), AttrInt("dim", 1))},
		Graph: &pb.GraphProto{Node: []*pb.NodeProto{inlNode("L0", "Layer", "pkg.m", []string{"a"}, []string{"b"}),
			inlNode("L1", "Layer", "pkg.m", []string{"b"}, []string{"c"})}}}
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m := &pb.ModelProto{}
		if proto.Unmarshal(b, m) != nil {
			return
		}
		unique := map[string]bool{}
		for _, n := range m.GetGraph().GetNode() {
			if unique[n.GetName()] {
				return // names not unique in the input: nothing to check
			}
			unique[n.GetName()] = true
		}
		got, err := InlineFunctions(m)
		if err != nil || got == m {
			return
		}
		if len(got.Functions) != 0 {
			t.Errorf("%d functions left", len(got.Functions))
		}
		seen := map[string]bool{}
		for _, n := range got.GetGraph().GetNode() {
			if n.GetName() != "" && seen[n.GetName()] {
				t.Errorf("node name %q twice", n.GetName())
			}
			seen[n.GetName()] = true
		}
	})
}
