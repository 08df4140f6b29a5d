package discover_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// mb builds small hand-made graphs for shapes of model that modelgen does not make.
type mb struct {
	g    *pb.GraphProto
	n    int
	seed float32
}

func newMB() *mb { return &mb{g: &pb.GraphProto{Name: proto.String("hand")}} }

func (b *mb) name(prefix string) string { b.n++; return fmt.Sprintf("%s%d", prefix, b.n) }

func (b *mb) init(dims ...int64) string {
	n := graph.NumElements(dims)
	data := make([]float32, n)
	for i := range data {
		b.seed += 0.37
		data[i] = b.seed - float32(int(b.seed))
	}
	name := b.name("w")
	b.g.Initializer = append(b.g.Initializer, onnx.NewFloat32(name, dims, data))
	return name
}

func (b *mb) op(op string, attrs []*pb.AttributeProto, ins ...string) string {
	out := b.name("v")
	b.g.Node = append(b.g.Node, &pb.NodeProto{Name: proto.String(b.name(op)), OpType: proto.String(op),
		Input: ins, Output: []string{out}, Attribute: attrs})
	return out
}

func ints(name string, v ...int64) *pb.AttributeProto {
	return onnx.AttrInts(name, v...)
}

func (b *mb) model() *pb.ModelProto {
	return &pb.ModelProto{IrVersion: proto.Int64(8), Graph: b.g,
		OpsetImport: []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}}}
}

const (
	hd  = 8  // width
	hv  = 16 // vocab
	hff = 12 // MLP width
)

func (b *mb) ln(x string) string {
	return b.op("LayerNormalization", nil, x, b.init(hd), b.init(hd))
}

func (b *mb) attn(x string) string {
	q := b.op("MatMul", nil, x, b.init(hd, hd))
	k := b.op("MatMul", nil, x, b.init(hd, hd))
	v := b.op("MatMul", nil, x, b.init(hd, hd))
	s := b.op("Softmax", nil, b.op("MatMul", nil, q, b.op("Transpose", []*pb.AttributeProto{ints("perm", 0, 2, 1)}, k)))
	return b.op("MatMul", nil, b.op("MatMul", nil, s, v), b.init(hd, hd))
}

func (b *mb) mlp(x string) string {
	return b.op("MatMul", nil, b.op("Relu", nil, b.op("MatMul", nil, x, b.init(hd, hff))), b.init(hff, hd))
}

// handModel builds an embedding, layers made by layer, and an LM head (after a
// final norm unless post is set).
func handModel(layers int, tokens bool, post bool, layer func(b *mb, h string) string) *pb.ModelProto {
	b := newMB()
	var h string
	if tokens {
		b.g.Input = append(b.g.Input, onnx.TensorInfo("ids", pb.TensorProto_INT64, "b", "t"))
		h = b.op("Gather", nil, b.init(hv, hd), "ids")
	} else {
		b.g.Input = append(b.g.Input, onnx.TensorInfo("pixels", pb.TensorProto_FLOAT, "b", "t", hd))
		h = b.op("Relu", nil, "pixels")
	}
	for i := 0; i < layers; i++ {
		h = layer(b, h)
	}
	if !post {
		h = b.ln(h)
	}
	out := b.op("MatMul", nil, h, b.init(hd, hv))
	b.g.Output = append(b.g.Output, onnx.TensorInfo(out, pb.TensorProto_FLOAT, "b", "t", hv))
	return b.model()
}

func noEmbedding(t *testing.T) *pb.ModelProto {
	return handModel(3, false, false, func(b *mb, h string) string {
		h = b.op("Add", nil, h, b.attn(b.ln(h)))
		return b.op("Add", nil, h, b.mlp(b.ln(h)))
	})
}

// TestOtherBlockShapes: parallel attention/MLP blocks (GPT-J and GPT-NeoX forms)
// are one residual branch per layer; post-norm blocks end with their norm.
func TestOtherBlockShapes(t *testing.T) {
	tests := []struct {
		name   string
		m      *pb.ModelProto
		period int
		slots  string
	}{
		{"parallel (a+m)+h", handModel(3, true, false, func(b *mb, h string) string {
			x := b.ln(h)
			return b.op("Add", nil, b.op("Add", nil, b.attn(x), b.mlp(x)), h)
		}), 1, "nw nb pw pw pw pw pw pw"},
		{"parallel (h+a)+m", handModel(3, true, false, func(b *mb, h string) string {
			x := b.ln(h)
			return b.op("Add", nil, b.op("Add", nil, h, b.attn(x)), b.mlp(x))
		}), 1, "nw nb pw pw pw pw pw pw"},
		{"post-norm", handModel(3, true, true, func(b *mb, h string) string {
			h = b.ln(b.op("Add", nil, h, b.attn(h)))
			return b.ln(b.op("Add", nil, h, b.mlp(h)))
		}), 4, "pw pw pw pw nw nb pw pw nw nb"},
	}
	short := map[discover.ParamKind]string{discover.NormWeight: "nw", discover.NormBias: "nb", discover.ProjWeight: "pw", discover.ProjBias: "pb", discover.Other: "o"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testmodel.Find(t, tc.m)
			if s.NumLayers() != 3 || s.Period != tc.period {
				t.Fatalf("%d layers, period %d; want 3, %d", s.NumLayers(), s.Period, tc.period)
			}
			var kinds []string
			for _, p := range s.Layers[1].Params {
				kinds = append(kinds, short[p.Kind])
			}
			if got := strings.Join(kinds, " "); got != tc.slots {
				t.Errorf("slots %q, want %q", got, tc.slots)
			}
			// The last layer's output feeds the head.
			head := tc.m.Graph.Node[s.LMHead]
			if s.Hidden[3] != s.Layers[2].Output || head.GetOpType() != "MatMul" {
				t.Errorf("h_L %q, head %s", s.Hidden[3], head.GetOpType())
			}
		})
	}
}
