package runtime

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// TestFusionsApplied checks which fused kernels the fast path of the
// reference models uses (their results are checked bitwise against the
// unfused first run by TestPartialRun and TestFoldingEquivalence).
func TestFusionsApplied(t *testing.T) {
	for _, c := range []struct {
		model string
		want  map[string]int
	}{
		{"llama8", map[string]int{"FusedAttentionPV": 8, "FusedRMSNorm": 17, "FusedSwiGLU": 8, "FusedRoPE": 16}},
		{"gpt2_6", map[string]int{"FusedAttentionPV": 6}},
	} {
		t.Run(c.model, func(t *testing.T) {
			m, err := onnx.Load(testenv.TestModel(t, c.model))
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(m.Proto, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ids, _ := NewInt64([]int{1, 16}, make([]int64, 16))
			for range 2 {
				if _, err := s.Run(map[string]*Tensor{"input_ids": ids}, nil); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string]int{}
			for _, p := range s.plans {
				for _, st := range p.fast {
					if len(st.op) > 5 && st.op[:5] == "Fused" {
						got[st.op]++
					}
				}
			}
			if fmt.Sprint(sortedCounts(got)) != fmt.Sprint(sortedCounts(c.want)) {
				t.Errorf("fused steps %v, want %v", got, c.want)
			}
		})
	}
}

func sortedCounts(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}

// attentionModel: softmax(Q @ Transpose(K) / 4 + mask) with the mask a graph
// input (computed from an attention_mask in real exports), then @ V and the
// heads transposed back.
func attentionModel() *pb.ModelProto {
	node := func(op string, in []string, out string, attrs ...*pb.AttributeProto) *pb.NodeProto {
		return &pb.NodeProto{OpType: proto.String(op), Name: proto.String(out), Input: in, Output: []string{out}, Attribute: attrs}
	}
	perm := func(p ...int64) *pb.AttributeProto {
		return onnx.AttrInts("perm", p...)
	}
	input := func(name string) *pb.ValueInfoProto {
		return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
			TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(int32(pb.TensorProto_FLOAT))}}}}
	}
	four := onnx.NewFloat32("four", nil, []float32{4})
	return &pb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: []*pb.OperatorSetIdProto{{Version: proto.Int64(17)}},
		Graph: &pb.GraphProto{
			Name:        proto.String("attn"),
			Input:       []*pb.ValueInfoProto{input("q"), input("k"), input("v"), input("mask")},
			Output:      []*pb.ValueInfoProto{{Name: proto.String("out")}},
			Initializer: []*pb.TensorProto{four},
			Node: []*pb.NodeProto{
				node("Transpose", []string{"k"}, "kt", perm(0, 1, 3, 2)),
				node("MatMul", []string{"q", "kt"}, "s"),
				node("Div", []string{"s", "four"}, "sd"),
				node("Add", []string{"mask", "sd"}, "sm"),
				node("Softmax", []string{"sm"}, "p"),
				node("MatMul", []string{"p", "v"}, "o"),
				node("Transpose", []string{"o"}, "out", perm(0, 2, 1, 3)),
			},
		}}
}

func TestAttentionFusionDynamicMask(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const B, H, T, D = 2, 3, 7, 16
	mk := func(shape ...int) *Tensor {
		x, _ := NewFloat32(shape, randF32(r, numel(shape)))
		return x
	}
	mask := mk(B, 1, T, T)
	for i, v := range mask.Float32Data() {
		if v < -0.5 {
			mask.Float32Data()[i] = -3.4028235e38
		}
	}
	feeds := map[string]*Tensor{"q": mk(B, H, T, D), "k": mk(B, H, T, D), "v": mk(B, H, T, D), "mask": mask}
	var ref *Tensor
	// Fetching the probabilities p too keeps them a value: the attention then
	// fuses only up to the softmax, and the product with V separately.
	for _, c := range []struct {
		opts  Options
		fetch []string
		want  map[string]int
	}{
		{Options{NoFolding: true}, nil, nil},
		{Options{}, nil, map[string]int{"FusedAttentionPV": 1}},
		{Options{Threads: 3}, nil, map[string]int{"FusedAttentionPV": 1}},
		{Options{Threads: 1}, []string{"out", "p"}, map[string]int{"FusedAttention": 1, "FusedMatMul": 1}},
	} {
		s, err := New(attentionModel(), c.opts)
		if err != nil {
			t.Fatal(err)
		}
		for run := range 2 {
			out, err := s.Run(feeds, c.fetch)
			if err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				ref = out["out"]
				continue
			}
			for i, v := range out["out"].Float32Data() {
				if v != ref.Float32Data()[i] {
					t.Fatalf("opts %+v fetch %v run %d: out[%d] = %v, unfused %v", c.opts, c.fetch, run, i, v, ref.Float32Data()[i])
				}
			}
		}
		if c.want != nil {
			got := map[string]int{}
			for _, p := range s.plans {
				for _, st := range p.fast {
					got[st.op]++
				}
			}
			if fmt.Sprint(sortedCounts(got)) != fmt.Sprint(sortedCounts(c.want)) {
				t.Errorf("fetch %v: fast steps %v, want %v", c.fetch, got, c.want)
			}
		}
	}
}

// TestAttentionPVFallback runs the fused attention on shapes its kernel
// declines (no keys: T = 0), where the original nodes must run.
func TestAttentionPVFallback(t *testing.T) {
	const B, H, D = 2, 3, 16
	z := func(shape ...int) *Tensor { x, _ := NewFloat32(shape, make([]float32, numel(shape))); return x }
	feeds := map[string]*Tensor{"q": z(B, H, 0, D), "k": z(B, H, 0, D), "v": z(B, H, 0, D), "mask": z(B, 1, 0, 0)}
	s, err := New(attentionModel(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		out, err := s.Run(feeds, nil)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if got := out["out"].Shape(); fmt.Sprint(got) != fmt.Sprint([]int{B, 0, H, D}) {
			t.Fatalf("run %d: out shape %v, want [%d 0 %d %d]", run, got, B, H, D)
		}
	}
}
