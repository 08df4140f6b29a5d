package discover_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// genaiModels are the deployed layouts modelgen writes (docs/design/formats.md):
// the onnxruntime-genai builder's four precisions and transformers.js's q4 and
// int8 variants of an optimum export.
func genaiModels(t *testing.T) map[string]*pb.ModelProto {
	t.Helper()
	out := map[string]*pb.ModelProto{}
	base := modelgen.GenAIConfig{Layers: 3, Hidden: 64, Heads: 4, KVHeads: 2, FFN: 96, Seed: 5}
	for _, p := range []string{modelgen.GenAIFP32, modelgen.GenAIFP16, modelgen.GenAIInt4, modelgen.GenAIInt8} {
		c := base
		c.Precision = p
		m, _, err := modelgen.BuildGenAI(c)
		if err != nil {
			t.Fatal(err)
		}
		out["genai-"+p] = m
	}
	c := base
	c.Precision, c.Asymmetric, c.BlockSize = modelgen.GenAIInt4, true, 16
	m, _, err := modelgen.BuildGenAI(c)
	if err != nil {
		t.Fatal(err)
	}
	out["genai-int4-zp"] = m
	tc := modelgen.Config{Arch: modelgen.Llama, Layers: 3, Hidden: 64, Heads: 4, KVHeads: 2, FFN: 80, KVCache: true,
		AttentionMask: true, PositionIDs: true, TransposedWeights: true, Seed: 21}
	for _, v := range []string{modelgen.TransformersJSQ4, modelgen.TransformersJSQuantized} {
		m, err := modelgen.BuildTransformersJS(tc, v)
		if err != nil {
			t.Fatal(err)
		}
		out["txjs-"+v] = m
	}
	return out
}

// TestGenAILayouts: the layers of the deployed layouts are found by their
// structure: the fused residual stream (Skip…Normalization), packed q/k/v,
// quantized weights with their parts, GroupQueryAttention's KV cache.
func TestGenAILayouts(t *testing.T) {
	for name, m := range genaiModels(t) {
		t.Run(name, func(t *testing.T) {
			s := testmodel.Find(t, m)
			if s.NumLayers() != 3 || s.Period != 2 {
				t.Fatalf("%d layers, period %d; want 3 and 2", s.NumLayers(), s.Period)
			}
			checkGenAISlots(t, m, s)
			genai := strings.HasPrefix(name, "genai")
			wantRoles := []discover.ProjRole{discover.RoleQ, discover.RoleV, discover.RoleK, discover.RoleO, discover.RoleGate, discover.RoleUp, discover.RoleDown}
			if genai {
				wantRoles = []discover.ProjRole{discover.RoleQKV, discover.RoleO, discover.RoleGate, discover.RoleUp, discover.RoleDown}
			}
			storage, bits, block, parts := discover.Dense, 0, 0, 1
			switch {
			case strings.Contains(name, "int4-zp"):
				storage, bits, block, parts = discover.NBits, 4, 16, 3
			case strings.Contains(name, "int4"), name == "txjs-q4":
				storage, bits, block, parts = discover.NBits, 4, 32, 2
			case strings.Contains(name, "int8"):
				storage, bits, block, parts = discover.NBits, 8, 32, 2
			case name == "txjs-quantized":
				storage, parts = discover.Int8PerTensor, 3
			}
			for _, l := range s.Layers {
				var roles []discover.ProjRole
				for _, p := range l.Projections {
					roles = append(roles, p.Role)
					if p.Storage != storage || p.Bits != bits || p.BlockSize != block || len(p.Weights) != parts {
						t.Errorf("layer %d %s projection: storage %s bits %d block %d, %d weight inputs; want %s %d %d %d",
							l.Index, p.Role, p.Storage, p.Bits, p.BlockSize, len(p.Weights), storage, bits, block, parts)
					}
					for _, w := range p.Weights {
						if m.Graph.Node[w.Node].Input[w.Input] != w.Name || l.Params[w.Slot].Name != w.Name || l.Params[w.Slot].Kind != discover.ProjWeight {
							t.Errorf("layer %d %s: weight input %+v is not what the node reads (%q)", l.Index, p.Role, w, m.Graph.Node[w.Node].Input[w.Input])
						}
					}
					if strings.Contains(p.Output, "quantized") {
						t.Errorf("layer %d %s: output %q is not the scaled product", l.Index, p.Role, p.Output)
					}
					if storage == discover.NBits && (p.In <= 0 || p.Out <= 0) {
						t.Errorf("layer %d %s: in %d out %d", l.Index, p.Role, p.In, p.Out)
					}
				}
				slices.Sort(roles)
				want := slices.Clone(wantRoles)
				slices.Sort(want)
				if !slices.Equal(roles, want) {
					t.Errorf("layer %d roles %v, want %v", l.Index, roles, want)
				}
				for _, kv := range append(slices.Clone(l.Past), l.Present...) {
					if !strings.Contains(kv, fmt.Sprintf(".%d.", l.Index)) {
						t.Errorf("layer %d: KV value %q", l.Index, kv)
					}
				}
				if len(l.Past) != 2 || len(l.Present) != 2 || strings.HasSuffix(l.Past[0], "key") != strings.HasSuffix(l.Present[0], "key") {
					t.Errorf("layer %d: past %v present %v, want two each in the same order", l.Index, l.Past, l.Present)
				}
			}
			if !genai {
				if s.Branch != nil {
					t.Errorf("plain layout with fused branches %v", s.Branch)
				}
				return
			}
			// The fused stream: h_i enters layer i's input norm with the down
			// projection's output of layer i-1; layer 0's norm is plain.
			if len(s.Branch) != 4 || s.Branch[0] != "" {
				t.Fatalf("branches %q", s.Branch)
			}
			for _, l := range s.Layers {
				in := m.Graph.Node[l.Norms[0].Node]
				wantOp := "SkipSimplifiedLayerNormalization"
				if l.Index == 0 {
					wantOp = "SimplifiedLayerNormalization"
				}
				if in.GetOpType() != wantOp || in.Input[0] != l.Input || (l.Index > 0 && in.Input[1] != l.InputBranch) {
					t.Errorf("layer %d: input norm %s(%v), want %s of %q and %q", l.Index, in.GetOpType(), in.Input, wantOp, l.Input, l.InputBranch)
				}
				down := l.Projections[len(l.Projections)-1]
				if down.Role != discover.RoleDown || down.Output != l.OutputBranch || down.Residual != l.OutputBranch || s.Branch[l.Index+1] != l.OutputBranch {
					t.Errorf("layer %d: down writes %q (residual %q), the branch leaving is %q", l.Index, down.Output, down.Residual, l.OutputBranch)
				}
				if want := fmt.Sprintf("/model/layers.%d/post_attention_layernorm/output_3", l.Index); l.Output != want {
					t.Errorf("layer %d output %q, want %q", l.Index, l.Output, want)
				}
			}
			if want := "/model/layers.3/final_norm_layernorm/output_0"; s.FinalNorm != want {
				t.Errorf("final norm %q, want %q", s.FinalNorm, want)
			}
		})
	}
}

func TestGenAISameAfterRenaming(t *testing.T) {
	for name, m := range genaiModels(t) {
		for _, seed := range []uint64{0, 5} {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				sameStackAfterRenaming(t, m, seed)
			})
		}
	}
}

// TestRefusesUnknownOps: an op discovery cannot classify is named with its
// node and domain.
func TestRefusesUnknownOps(t *testing.T) {
	m := genaiModels(t)["genai-int4"]
	for _, tt := range []struct{ op, domain string }{
		{"SkipGroupNorm", "com.microsoft"},
		{"MyAttention", "com.example"},
	} {
		c := proto.Clone(m).(*pb.ModelProto)
		n := c.Graph.Node[len(c.Graph.Node)/2]
		n.OpType, n.Domain = proto.String(tt.op), proto.String(tt.domain)
		_, err := discover.Find(c)
		var ue *discover.UnsupportedOpError
		if !errors.As(err, &ue) || ue.Op != tt.op || ue.Domain != tt.domain || ue.Node != n.GetName() {
			t.Fatalf("%s.%s: err = %v", tt.domain, tt.op, err)
		}
		for _, part := range []string{tt.op, tt.domain, n.GetName()} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q does not name %q", err, part)
			}
		}
	}
}

// checkGenAISlots is checkSlotsAligned for the genai layout, whose layer 0
// input norm the builder names LayerNorm and the others SkipLayerNorm.
func checkGenAISlots(t *testing.T, m *pb.ModelProto, s *discover.Stack) {
	t.Helper()
	checkSlots(t, m, s, func(n string) string { return strings.Replace(n, "/SkipLayerNorm", "/LayerNorm", 1) })
}
