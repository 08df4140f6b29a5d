package runtime

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// ropeModel is Hugging Face's apply_rotary_pos_emb as exported: q [B, T, H, D]
// transposed to [B, H, T, D], out = q·cos + rotate_half(q)·sin with cos and
// sin graph inputs [B, 1, T, D]; the slices split the last axis at split
// (D/2 in real models; another split must fall back to the original nodes).
// The transposed q is also an output when tapT is set (the Transpose then
// cannot be folded).
func ropeModel(split int64, tapT bool) *pb.ModelProto {
	node := func(op string, in []string, out string, attrs ...*pb.AttributeProto) *pb.NodeProto {
		return &pb.NodeProto{OpType: proto.String(op), Name: proto.String(out), Input: in, Output: []string{out}, Attribute: attrs}
	}
	ints := func(name string, p ...int64) *pb.AttributeProto {
		return onnx.AttrInts(name, p...)
	}
	axis := onnx.AttrInt("axis", -1)
	input := func(name string) *pb.ValueInfoProto {
		return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
			TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(int32(pb.TensorProto_FLOAT))}}}}
	}
	outputs := []*pb.ValueInfoProto{{Name: proto.String("out")}}
	if tapT {
		outputs = append(outputs, &pb.ValueInfoProto{Name: proto.String("qt")})
	}
	return &pb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: []*pb.OperatorSetIdProto{{Version: proto.Int64(17)}},
		Graph: &pb.GraphProto{
			Name:   proto.String("rope"),
			Input:  []*pb.ValueInfoProto{input("q"), input("cos"), input("sin")},
			Output: outputs,
			Initializer: []*pb.TensorProto{
				onnx.NewInt64("zero", []int64{1}, []int64{0}),
				onnx.NewInt64("split", []int64{1}, []int64{split}),
				onnx.NewInt64("big", []int64{1}, []int64{math.MaxInt64}),
				onnx.NewInt64("last", []int64{1}, []int64{-1}),
				onnx.NewInt64("one", []int64{1}, []int64{1}),
			},
			Node: []*pb.NodeProto{
				node("Transpose", []string{"q"}, "qt", ints("perm", 0, 2, 1, 3)),
				node("Mul", []string{"qt", "cos"}, "a"),
				node("Slice", []string{"qt", "zero", "split", "last", "one"}, "x1"),
				node("Slice", []string{"qt", "split", "big", "last"}, "x2"),
				node("Neg", []string{"x2"}, "nx2"),
				node("Concat", []string{"nx2", "x1"}, "rot", axis),
				node("Mul", []string{"sin", "rot"}, "b"),
				node("Add", []string{"b", "a"}, "out"),
			},
		}}
}

// TestRoPEFusion compares the fused rotary embedding with the original nodes
// bit for bit, for head sizes on and off the vector path, with cos/sin
// broadcast over heads, when the Transpose cannot be folded, and when the
// slices do not split at D/2 (the fused kernel must fall back).
func TestRoPEFusion(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, c := range []struct {
		d     int
		split int64
		tapT  bool
		fused bool // the RoPE kernel itself runs (not its fallback)
	}{{32, 16, false, true}, {64, 32, false, true}, {6, 3, false, true}, {32, 16, true, true}, {32, 8, false, false}} {
		t.Run(fmt.Sprintf("D=%d/split=%d/tap=%v", c.d, c.split, c.tapT), func(t *testing.T) {
			const B, T, H = 2, 5, 3
			mk := func(shape ...int) *Tensor {
				x, _ := NewFloat32(shape, randF32(r, numel(shape)))
				return x
			}
			feeds := map[string]*Tensor{"q": mk(B, T, H, c.d), "cos": mk(B, 1, T, c.d), "sin": mk(B, 1, T, c.d)}
			var ref map[string]*Tensor
			for _, opts := range []Options{{NoFolding: true}, {}, {Threads: 3}} {
				s, err := New(ropeModel(c.split, c.tapT), opts)
				if err != nil {
					t.Fatal(err)
				}
				if err := RunsAgree(s, feeds, nil, &ref); err != nil {
					t.Fatalf("opts %+v: %v", opts, err)
				}
				if opts.NoFolding {
					continue
				}
				got := map[string]int{}
				for _, p := range s.plans {
					for _, st := range p.fast {
						got[st.op]++
					}
				}
				want := map[string]int{"FusedRoPE": 1}
				if c.tapT {
					want = map[string]int{"FusedRoPE": 1, "Transpose": 1}
				}
				if fmt.Sprint(sortedCounts(got)) != fmt.Sprint(sortedCounts(want)) {
					t.Errorf("fast steps %v, want %v", got, want)
				}
			}
			// The kernel's own verdict on these shapes.
			x := feeds["q"]
			_, ok, err := ropeKernel(&execCtx{threads: 1}, x, []int{0, 2, 1, 3}, feeds["cos"], feeds["sin"],
				ropeSlice{starts: []int64{0}, ends: []int64{c.split}, axes: []int64{-1}, steps: []int64{1}},
				ropeSlice{starts: []int64{c.split}, ends: []int64{math.MaxInt64}, axes: []int64{-1}}, -1)
			if err != nil || ok != c.fused {
				t.Errorf("ropeKernel: ok = %v, err = %v; want ok = %v", ok, err, c.fused)
			}
		})
	}
}
