package runtime_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

func nodeP(op, name string, in, out []string, attrs ...*pb.AttributeProto) *pb.NodeProto {
	return &pb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: in, Output: out, Attribute: attrs}
}

func vinfo(name string, et pb.TensorProto_DataType) *pb.ValueInfoProto {
	return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
		TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(int32(et))}}}}
}

func aGraph(name string, g *pb.GraphProto) *pb.AttributeProto {
	return onnx.AttrGraph(name, g)
}

func branchGraph(name string, nodes []*pb.NodeProto, inits []*pb.TensorProto, outs ...string) *pb.GraphProto {
	g := &pb.GraphProto{Name: proto.String(name), Node: nodes, Initializer: inits}
	for _, o := range outs {
		g.Output = append(g.Output, vinfo(o, pb.TensorProto_FLOAT))
	}
	return g
}

// ifModel: y = 2·x (an outer node), then z = If(cond): then y + w (w an
// outer initializer) and, through a nested If on the same cond, y + w + x;
// else y − w, and x / d where d is the else branch's own initializer (an
// int division by zero when bad is set, so that running the else branch
// fails: the then branch must run alone).
func ifModel(opset int64, bad bool) *pb.ModelProto {
	d := int64(2)
	if bad {
		d = 0
	}
	inner := branchGraph("inner", []*pb.NodeProto{nodeP("Add", "inner_add", []string{"a", "x"}, []string{"b"})}, nil, "b")
	innerElse := branchGraph("inner_else", []*pb.NodeProto{nodeP("Identity", "inner_id", []string{"a"}, []string{"b2"})}, nil, "b2")
	then := branchGraph("then", []*pb.NodeProto{
		nodeP("Add", "then_add", []string{"y", "w"}, []string{"a"}),
		nodeP("If", "nested", []string{"cond"}, []string{"nb"}, aGraph("then_branch", inner), aGraph("else_branch", innerElse)),
	}, nil, "a", "nb")
	els := branchGraph("else", []*pb.NodeProto{
		nodeP("Sub", "else_sub", []string{"y", "w"}, []string{"s"}),
		nodeP("Div", "else_div", []string{"n", "d"}, []string{"q"}),
		nodeP("Cast", "else_cast", []string{"q"}, []string{"qf"}, onnx.AttrInt("to", int64(pb.TensorProto_FLOAT))),
	}, []*pb.TensorProto{encode("n", i64(sh(2), 7, 9)), encode("d", i64(sh(), d))}, "s", "qf")
	g := &pb.GraphProto{
		Name:        proto.String("if_test"),
		Input:       []*pb.ValueInfoProto{vinfo("x", pb.TensorProto_FLOAT), vinfo("cond", pb.TensorProto_BOOL)},
		Initializer: []*pb.TensorProto{encode("w", f32(sh(2), 10, 20)), encode("two", f32(sh(), 2))},
		Node: []*pb.NodeProto{
			nodeP("Mul", "double", []string{"x", "two"}, []string{"y"}),
			nodeP("If", "the_if", []string{"cond"}, []string{"z0", "z1"}, aGraph("then_branch", then), aGraph("else_branch", els)),
		},
		Output: []*pb.ValueInfoProto{vinfo("z0", pb.TensorProto_FLOAT), vinfo("z1", pb.TensorProto_FLOAT)},
	}
	return &pb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: []*pb.OperatorSetIdProto{{Version: proto.Int64(opset)}}, Graph: g}
}

func TestIf(t *testing.T) {
	x := f32(sh(2), 1, 2)
	cases := []struct {
		name    string
		opset   int64
		bad     bool
		cond    *runtime.Tensor
		want    [2][]float32
		wantErr string
	}{
		{name: "then, nested then", opset: 17, cond: bools(sh(1), true), want: [2][]float32{{12, 24}, {13, 26}}},
		{name: "else", opset: 17, cond: bools(sh(1), false), want: [2][]float32{{-8, -16}, {3, 4}}},
		{name: "scalar cond", opset: 11, cond: bools(sh(), true), want: [2][]float32{{12, 24}, {13, 26}}},
		{name: "opset 21", opset: 21, cond: bools(sh(1), false), want: [2][]float32{{-8, -16}, {3, 4}}},
		{name: "only the taken branch runs", opset: 17, bad: true, cond: bools(sh(1), true), want: [2][]float32{{12, 24}, {13, 26}}},
		{name: "the failing branch fails", opset: 17, bad: true, cond: bools(sh(1), false), wantErr: "division by zero"},
		{name: "cond of two", opset: 17, cond: bools(sh(2), true, true), wantErr: "cond must be one bool"},
		{name: "opset 10", opset: 10, cond: bools(sh(1), true), wantErr: `unsupported op If in node "the_if" (domain ai.onnx, opset 10): If needs opset 11`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := runtime.New(ifModel(c.opset, c.bad), runtime.Options{})
			if err == nil {
				for run := range 2 { // the second Run takes the cached plan
					var out map[string]*runtime.Tensor
					out, err = s.Run(map[string]*runtime.Tensor{"x": x, "cond": c.cond}, nil)
					if err != nil {
						break
					}
					for i, name := range []string{"z0", "z1"} {
						got := out[name].Float32Data()
						if len(got) != len(c.want[i]) || got[0] != c.want[i][0] || got[1] != c.want[i][1] {
							t.Errorf("run %d: %s = %v, want %v", run, name, got, c.want[i])
						}
					}
				}
			}
			if c.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
		})
	}
}

// TestIfRefused: malformed If nodes, and the control flow the runtime does
// not run (Loop, Scan, an unsupported op inside a branch), are refused by New
// with the op, node, domain and opset named.
func TestIfRefused(t *testing.T) {
	body := branchGraph("body", []*pb.NodeProto{nodeP("Identity", "id", []string{"x"}, []string{"o"})}, nil, "o")
	two := branchGraph("two", []*pb.NodeProto{nodeP("Identity", "id", []string{"x"}, []string{"o"})}, nil, "o", "x")
	loopy := branchGraph("loopy", []*pb.NodeProto{nodeP("Loop", "inner_loop", []string{"", "cond"}, []string{"o"}, aGraph("body", body))}, nil, "o")
	withInput := branchGraph("in", []*pb.NodeProto{nodeP("Identity", "id", []string{"x"}, []string{"o"})}, nil, "o")
	withInput.Input = []*pb.ValueInfoProto{vinfo("x", pb.TensorProto_FLOAT)}
	reads := branchGraph("reads", []*pb.NodeProto{nodeP("Identity", "id", []string{"nowhere"}, []string{"o"})}, nil, "o")
	cases := []struct {
		name    string
		node    *pb.NodeProto
		wantErr string
	}{
		{"Loop", nodeP("Loop", "a_loop", []string{"", "cond"}, []string{"o"}, aGraph("body", body)), `unsupported op Loop in node "a_loop" (domain ai.onnx, opset 17)`},
		{"Scan", nodeP("Scan", "a_scan", []string{"x"}, []string{"o"}, aGraph("body", body), onnx.AttrInt("num_scan_inputs", 1)), `unsupported op Scan in node "a_scan" (domain ai.onnx, opset 17)`},
		{"Loop in a branch", nodeP("If", "outer_if", []string{"cond"}, []string{"o"}, aGraph("then_branch", loopy), aGraph("else_branch", body)),
			`unsupported op If in node "outer_if" (domain ai.onnx, opset 17): then_branch: unsupported op Loop in node "inner_loop" (domain ai.onnx, opset 17)`},
		{"missing branch", nodeP("If", "half_if", []string{"cond"}, []string{"o"}, aGraph("then_branch", body)), "attribute else_branch: want a GRAPH"},
		{"outputs differ", nodeP("If", "uneven", []string{"cond"}, []string{"o"}, aGraph("then_branch", two), aGraph("else_branch", body)), "then_branch has 2 outputs, the node 1"},
		{"branch inputs", nodeP("If", "inputs", []string{"cond"}, []string{"o"}, aGraph("then_branch", withInput), aGraph("else_branch", body)), "then_branch declares 1 inputs"},
		{"reads nothing", nodeP("If", "dangling", []string{"cond"}, []string{"o"}, aGraph("then_branch", reads), aGraph("else_branch", body)), `a branch reads "nowhere"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := &pb.GraphProto{Name: proto.String("refused"),
				Input: []*pb.ValueInfoProto{vinfo("x", pb.TensorProto_FLOAT), vinfo("cond", pb.TensorProto_BOOL)},
				Node:  []*pb.NodeProto{c.node}, Output: []*pb.ValueInfoProto{vinfo("o", pb.TensorProto_FLOAT)}}
			m := &pb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: []*pb.OperatorSetIdProto{{Version: proto.Int64(17)}}, Graph: g}
			_, err := runtime.New(m, runtime.Options{})
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
		})
	}
}
