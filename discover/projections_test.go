package discover_test

import (
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/reference"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// exporterNames are the module names the exporters give each projection role
// (HF llama and GPT-2). Discovery ignores names; the test uses them to check it.
var exporterNames = map[discover.ProjRole][]string{
	discover.RoleQ: {"q_proj/"}, discover.RoleK: {"k_proj/"}, discover.RoleV: {"v_proj/"},
	discover.RoleQKV: {"attn/c_attn/"}, discover.RoleO: {"o_proj/", "attn/c_proj/"},
	discover.RoleGate: {"gate_proj/"}, discover.RoleUp: {"up_proj/", "mlp/c_fc/"},
	discover.RoleDown: {"down_proj/", "mlp/c_proj/"},
}

// TestProjectionsAndNorms: every layer's projections have the role their
// exporter's names say, name their weight and bias slots, and exactly the down
// projection writes the layer's last residual branch; norms pair scale and
// shift slots.
func TestProjectionsAndNorms(t *testing.T) {
	type model struct {
		name string
		get  func(t *testing.T) *pb.ModelProto
		gpt2 bool // packed qkv, biases and LayerNorms
		// heads: the attention's query and KV heads and head size.
		heads discover.Attention
	}
	var models []model
	for _, name := range reference.Models {
		// Both reference models: 4 heads of 32 (d = 128).
		models = append(models, model{name, func(t *testing.T) *pb.ModelProto { return load(t, name) }, strings.HasPrefix(name, "gpt2"), discover.Attention{Heads: 4, KVHeads: 4, HeadDim: 32}})
	}
	for _, c := range []modelgen.Config{
		{Arch: modelgen.Llama, Layers: 3, Hidden: 32, Heads: 4, FFN: 48},
		{Arch: modelgen.Llama, Layers: 3, Hidden: 32, Heads: 4, KVHeads: 2, KVCache: true, AttentionMask: true},
		{Arch: modelgen.Llama, Layers: 3, Hidden: 32, Heads: 4, TransposedWeights: true, DedupIdentity: true, TiedEmbeddings: true},
		{Arch: modelgen.GPT2, Layers: 3, Hidden: 32, Heads: 4, KVCache: true, DedupIdentity: true},
	} {
		kv := c.KVHeads
		if kv == 0 {
			kv = c.Heads
		}
		models = append(models, model{c.String(), gen(c), c.Arch == modelgen.GPT2, discover.Attention{Heads: c.Heads, KVHeads: kv, HeadDim: c.Hidden / c.Heads}})
	}
	for _, mc := range models {
		t.Run(mc.name, func(t *testing.T) {
			m := mc.get(t)
			s := testmodel.Find(t, m)
			gpt2 := mc.gpt2
			want := []discover.ProjRole{discover.RoleQ, discover.RoleK, discover.RoleV, discover.RoleO, discover.RoleGate, discover.RoleUp, discover.RoleDown}
			if gpt2 {
				want = []discover.ProjRole{discover.RoleQKV, discover.RoleO, discover.RoleUp, discover.RoleDown}
			}
			for _, l := range s.Layers {
				if l.Attention == nil || *l.Attention != mc.heads {
					t.Errorf("layer %d: attention %+v, want %+v", l.Index, l.Attention, mc.heads)
				}
				var roles []discover.ProjRole
				residual := 0
				for i, p := range l.Projections {
					roles = append(roles, p.Role)
					w := p.Matrix()
					if w < 0 || len(p.Weights) != 1 || p.Storage != discover.Dense || p.Weights[0].Name != l.Params[w].Name || l.Params[w].Kind != discover.ProjWeight {
						t.Fatalf("layer %d projection %d: weights %+v", l.Index, i, p.Weights)
					}
					if p.Transposed != l.Params[w].Transposed || p.In*p.Out != l.Params[w].Elements {
						t.Errorf("layer %d %s: transposed %v %d×%d, slot %+v", l.Index, p.Role, p.Transposed, p.In, p.Out, l.Params[w])
					}
					hint := m.Graph.Node[p.Node].GetName()
					if !slices.ContainsFunc(exporterNames[p.Role], func(s string) bool { return strings.Contains(hint, s) }) {
						t.Errorf("layer %d: %s is %s", l.Index, hint, p.Role)
					}
					if gpt2 != (p.Bias >= 0) || (p.Bias >= 0 && l.Params[p.Bias].Kind != discover.ProjBias) {
						t.Errorf("layer %d %s: bias slot %d", l.Index, p.Role, p.Bias)
					}
					if p.Bias >= 0 && path.Dir(m.Graph.Node[p.BiasNode].GetName()) != path.Dir(hint) {
						t.Errorf("layer %d %s: bias added by %s", l.Index, p.Role, m.Graph.Node[p.BiasNode].GetName())
					}
					if p.Residual != "" {
						residual++
						if p.Role != discover.RoleDown || !readsValue(m, l.Output, p.Residual) {
							t.Errorf("layer %d: %s writes %q, which the output %q is not computed from", l.Index, p.Role, p.Residual, l.Output)
						}
					}
				}
				slices.Sort(roles)
				slices.Sort(want)
				if !slices.Equal(roles, want) {
					t.Errorf("layer %d: roles %v, want %v", l.Index, roles, want)
				}
				if residual != 1 {
					t.Errorf("layer %d: %d projections write the residual branch, want 1", l.Index, residual)
				}
				if len(l.Norms) != 2 {
					t.Errorf("layer %d: norms %+v, want 2", l.Index, l.Norms)
				}
				for _, n := range l.Norms {
					if n.Scale < 0 || l.Params[n.Scale].Kind != discover.NormWeight || gpt2 != (n.Shift >= 0) || (n.Shift >= 0 && l.Params[n.Shift].Kind != discover.NormBias) {
						t.Errorf("layer %d: norm %+v", l.Index, n)
					}
				}
			}
		})
	}
}

// readsValue reports whether the node producing out reads in.
func readsValue(m *pb.ModelProto, out, in string) bool {
	for _, n := range m.Graph.Node {
		if slices.Contains(n.Output, out) {
			return slices.Contains(n.Input, in)
		}
	}
	return false
}
