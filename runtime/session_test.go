package runtime_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

func TestUnsupportedOpRefused(t *testing.T) {
	m, _ := oneNodeModel("Add", 14, nil, []*runtime.Tensor{f32(sh(1), 1), f32(sh(1), 2)}, 1, false)
	m.Graph.Node = append(m.Graph.Node,
		&pb.NodeProto{OpType: proto.String("NonMaxSuppression"), Name: proto.String("/nms"), Input: []string{"out0"}, Output: []string{"x"}},
		&pb.NodeProto{OpType: proto.String("FusedMatMul"), Domain: proto.String("com.microsoft"), Name: proto.String("/fused"), Input: []string{"out0"}, Output: []string{"y"}},
		&pb.NodeProto{OpType: proto.String("Trilu"), Input: []string{"out0"}, Output: []string{"z"}, Attribute: []*pb.AttributeProto{onnx.AttrString("mode", "x")}},
	)
	_, err := runtime.New(m, runtime.Options{})
	var ue *runtime.UnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("New error = %v, want *runtime.UnsupportedError", err)
	}
	if len(ue.Ops) != 3 {
		t.Fatalf("got %d unsupported ops, want 3: %v", len(ue.Ops), err)
	}
	for _, want := range []string{
		`unsupported op NonMaxSuppression in node "/nms" (domain ai.onnx, opset 14)`,
		`unsupported op FusedMatMul in node "/fused" (domain com.microsoft, opset 0): the model imports no opset of domain "com.microsoft"`,
		`unsupported op Trilu in node "Trilu->z" (domain ai.onnx, opset 14): attribute mode is not supported`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	s := loadSession(t, "llama8", runtime.Options{})
	ids := calibRows(t, 1)
	for _, c := range []struct {
		name  string
		feeds map[string]*runtime.Tensor
		fetch []string
		want  string
	}{
		{"unknown feed", map[string]*runtime.Tensor{"input_ids": ids, "nope": ids}, nil, `feed "nope" is not a value of the graph`},
		{"unknown fetch", map[string]*runtime.Tensor{"input_ids": ids}, []string{"nope"}, `fetch "nope" is not a value of the graph`},
		{"missing input", map[string]*runtime.Tensor{}, nil, `graph input "input_ids" is needed but not fed`},
		{"wrong dtype", map[string]*runtime.Tensor{"input_ids": f32(sh(1, 2), 1, 2)}, nil, `feed "input_ids" is float32, the model declares int64`},
		{"wrong rank", map[string]*runtime.Tensor{"input_ids": i64(sh(2), 1, 2)}, nil, `feed "input_ids" has shape [2], the model declares rank 2`},
		{"token out of range", map[string]*runtime.Tensor{"input_ids": i64(sh(1, 2), 1, 300)}, nil, `index 300 out of range`},
		{"partial without ids", map[string]*runtime.Tensor{"/model/layers.3/Add_1_output_0": f32(sh(1, 2, 128))}, nil, `graph input "input_ids" is needed but not fed`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Run(c.feeds, c.fetch)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Run error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestFoldingEquivalence compares runs with and without the cache of
// shape-only values, and fetches a folded value (the causal mask) as a tap.
func TestFoldingEquivalence(t *testing.T) {
	feeds := map[string]*runtime.Tensor{"input_ids": calibRows(t, 2)}
	fetch := []string{"logits", "/model/Unsqueeze_6_output_0", "/model/rotary_emb/Unsqueeze_2_output_0"}
	var outs []map[string]*runtime.Tensor
	for _, opts := range []runtime.Options{{NoFolding: true}, {}, {Threads: 1}} {
		s := loadSession(t, "llama8", opts)
		for range 2 {
			out, err := s.Run(feeds, fetch)
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, out)
		}
	}
	for i, out := range outs[1:] {
		for _, f := range fetch {
			if err := closeTo(out[f], outs[0][f], 0); err != nil {
				t.Errorf("run %d, %s: %v", i+1, f, err)
			}
		}
	}
	mask := outs[1]["/model/Unsqueeze_6_output_0"]
	if got := mask.Shape(); len(got) != 4 || got[2] != 128 || got[3] != 128 {
		t.Errorf("mask shape %v, want [1 1 128 128]", got)
	}
	// A fetched folded value is the caller's copy: changing it must not
	// change later runs.
	mask.Float32Data()[1] = 42
	s := loadSession(t, "llama8", runtime.Options{})
	for range 3 {
		out, err := s.Run(feeds, fetch)
		if err != nil {
			t.Fatal(err)
		}
		out["/model/Unsqueeze_6_output_0"].Float32Data()[1] = 42
		if err := closeTo(out["logits"], outs[0]["logits"], 0); err != nil {
			t.Fatalf("after modifying a fetched folded value: %v", err)
		}
	}
}

func TestConcurrentRuns(t *testing.T) {
	s := loadSession(t, "gpt2_6", runtime.Options{})
	ids := calibRows(t, 2)
	const h2 = "/transformer/h.2/Add_1_output_0"
	want, err := s.Run(map[string]*runtime.Tensor{"input_ids": ids}, []string{"logits", h2})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			feeds := map[string]*runtime.Tensor{"input_ids": ids}
			fetch := []string{"logits"}
			if g%2 == 1 { // a partial run from layer 3
				feeds[h2] = want[h2]
			}
			for range 3 {
				out, err := s.Run(feeds, fetch)
				if err != nil {
					errs <- err
					return
				}
				if err := closeTo(out["logits"], want["logits"], 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHalfInitializers: FLOAT16 and BFLOAT16 weights read by an op that does
// not take them as stored (Add) are widened to float32 for it, and the graph
// computes in float32.
func TestHalfInitializers(t *testing.T) {
	for _, c := range []struct {
		dt   pb.TensorProto_DataType
		bits []uint16
	}{
		{pb.TensorProto_FLOAT16, []uint16{0x3e00, 0xc000}},  // 1.5, -2
		{pb.TensorProto_BFLOAT16, []uint16{0x3fc0, 0xc000}}, // 1.5, -2
	} {
		t.Run(c.dt.String(), func(t *testing.T) {
			m, feeds := oneNodeModel("Add", 17, nil, []*runtime.Tensor{f32(sh(2), 1, 1), f32(sh(2), 0, 0)}, 1, false)
			w, err := onnx.EncodeTensor("in1", &onnx.Tensor{DType: c.dt, Dims: []int64{2}, Data: c.bits})
			if err != nil {
				t.Fatal(err)
			}
			m.Graph.Input = m.Graph.Input[:1]
			m.Graph.Initializer = []*pb.TensorProto{w}
			delete(feeds, "in1")
			out := runModel(t, m, feeds)
			if err := closeTo(out["out0"], f32(sh(2), 2.5, -1), 0); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestFetchInitializer: an initializer can be fetched like any value, as a
// copy.
func TestFetchInitializer(t *testing.T) {
	s := loadSession(t, "llama8", runtime.Options{})
	out, err := s.Run(map[string]*runtime.Tensor{}, []string{"model.norm.weight"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Initializer("model.norm.weight")
	if err != nil {
		t.Fatal(err)
	}
	if err := closeTo(out["model.norm.weight"], w, 0); err != nil {
		t.Fatal(err)
	}
	out["model.norm.weight"].Float32Data()[0] = 123
	if w.Float32Data()[0] == 123 {
		t.Error("the fetched initializer shares memory with the model")
	}
}

// TestAllocationBomb: a shape that asks for more memory than the process may
// have is an error naming the node, not a crash.
func TestAllocationBomb(t *testing.T) {
	_, err := runOne("ConstantOfShape", 17, nil, []*runtime.Tensor{i64(sh(2), 1<<18, 1<<18)}, 1)
	if err == nil || !strings.Contains(err.Error(), `node "node_ConstantOfShape" (ConstantOfShape)`) || !strings.Contains(err.Error(), "256.0 GiB exceeds the memory") {
		t.Errorf("error = %v, want a refusal naming the node and the size", err)
	}
	_, err = runOne("Expand", 17, nil, []*runtime.Tensor{f32(sh(1), 1), i64(sh(3), 1<<20, 1<<20, 1<<10)}, 1)
	if err == nil || !strings.Contains(err.Error(), "exceeds the memory") {
		t.Errorf("Expand error = %v, want a refusal", err)
	}
}

// TestNodeOrder checks that nodes listed out of order are sorted before they
// run, and that a cycle is refused with graph's typed error.
func TestNodeOrder(t *testing.T) {
	relu := func(in, out string) *pb.NodeProto {
		return &pb.NodeProto{OpType: proto.String("Relu"), Name: proto.String(out), Input: []string{in}, Output: []string{out}}
	}
	m, feeds := oneNodeModel("Add", 14, nil, []*runtime.Tensor{f32(sh(2), -3, 1), f32(sh(2), 1, 1)}, 1, false)
	// y = Relu(out0) listed before the Add that computes out0.
	m.Graph.Node = append([]*pb.NodeProto{relu("out0", "y")}, m.Graph.Node...)
	m.Graph.Output = append(m.Graph.Output, &pb.ValueInfoProto{Name: proto.String("y")})
	s, err := runtime.New(m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(feeds, []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sameTensors([]*runtime.Tensor{out["y"]}, []*runtime.Tensor{f32(sh(2), 0, 2)}); err != nil {
		t.Error(err)
	}

	m.Graph.Node = append(m.Graph.Node, relu("b", "a"), relu("a", "b"))
	_, err = runtime.New(m, runtime.Options{})
	var ce *graph.CycleError
	if !errors.As(err, &ce) {
		t.Fatalf("New of a cyclic graph: error %v, want a *graph.CycleError", err)
	}
	if ce.N != 2 {
		t.Errorf("CycleError names %d nodes, want 2 (a, b): %v", ce.N, err)
	}
}
