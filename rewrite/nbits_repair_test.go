package rewrite_test

import (
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/slm"
)

// TestRepairNBits: a repair folded into a MatMulNBits down projection is
// applied to the dequantized weight and quantized again with the same bits
// and block size. Symmetric quantization is linear in a positive scale, so
// the repair 2·I gives the same packed values and twice the scales (under
// every rule, as a drop and as a merge), and I gives the weight back.
func TestRepairNBits(t *testing.T) {
	g := modelgen.GenAIConfig{Layers: 4, Hidden: 64, Heads: 4, KVHeads: 2, Seed: 5, Precision: modelgen.GenAIInt4}
	m, _, s := buildGenAI(t, g)
	down := -1
	for _, p := range s.Layers[1].Projections {
		if p.Role == discover.RoleDown {
			down = p.Matrix()
		}
	}
	if down < 0 {
		t.Fatal("no down projection")
	}
	d := 64
	ident := func(k float32) []float32 {
		m := make([]float32, d*d)
		for i := 0; i < d; i++ {
			m[i*d+i] = k
		}
		return m
	}
	for _, tt := range []struct {
		name  string
		plan  rewrite.Plan
		scale float32
		from  int // the layer whose down weight the repaired one scales
	}{
		{"drop_2x", rewrite.Plan{Rule: rewrite.Drop, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}, Repair: &rewrite.Repair{Slot: down, Matrix: ident(2)}}}}, 2, 1},
		{"code_2x", rewrite.Plan{Rule: rewrite.Code, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}, Repair: &rewrite.Repair{Slot: down, Matrix: ident(2)}}}}, 2, 2},
		{"alone_identity", rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 1}, Repair: &rewrite.Repair{Slot: down, Matrix: ident(1)}}}}, 1, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := rewrite.Merge(m, s, tt.plan, rewrite.Options{Check: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Requantized) != 1 || res.Requantized[0].Bits != 4 || res.Requantized[0].RelErr > 1e-6 {
				t.Fatalf("requantized %+v, want the down projection at 4 bits, exact", res.Requantized)
			}
			s2, err := discover.Find(res.Model)
			if err != nil {
				t.Fatal(err)
			}
			var got, want discover.Projection
			for _, p := range s2.Layers[1].Projections {
				if p.Role == discover.RoleDown {
					got = p
				}
			}
			for _, p := range s.Layers[tt.from].Projections {
				if p.Role == discover.RoleDown {
					want = p
				}
			}
			part := func(mp *pb.ModelProto, p discover.Projection, kind discover.WeightPart) *pb.TensorProto {
				wi, _ := p.Part(kind)
				for _, t := range mp.Graph.Initializer {
					if t.GetName() == wi.Name {
						return t
					}
				}
				t.Fatalf("no %s %q", kind, wi.Name)
				return nil
			}
			if a, b := part(res.Model, got, discover.Packed), part(m, want, discover.Packed); string(a.RawData) != string(b.RawData) {
				t.Errorf("packed values changed")
			}
			gs, err := onnx.Float32s(part(res.Model, got, discover.Scales))
			if err != nil {
				t.Fatal(err)
			}
			ws, err := onnx.Float32s(part(m, want, discover.Scales))
			if err != nil {
				t.Fatal(err)
			}
			for i := range ws {
				if gs[i] != tt.scale*ws[i] {
					t.Fatalf("scale %d: %g, want %g·%g", i, gs[i], tt.scale, ws[i])
				}
			}
		})
	}
}
