package modelgen

import (
	"fmt"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

var dynamoBase = DynamoConfig{Layers: 3, Hidden: 64, Heads: 4, KVHeads: 2, FFN: 96, Seed: 5}

func dynamoWith(f func(*DynamoConfig)) DynamoConfig {
	d := dynamoBase
	f(&d)
	return d
}

func opCounts(nodes []*pb.NodeProto) map[string]int {
	c := map[string]int{}
	for _, n := range nodes {
		c[n.GetOpType()]++
	}
	return c
}

// TestDynamoLayout checks the exporter's marks: node and value names,
// metadata_props name scopes, constants as initializers, opset-18 forms
// (ReduceMean axes as an input), the opset-23 ops, the legacy functions.
func TestDynamoLayout(t *testing.T) {
	t.Run("opset18", func(t *testing.T) {
		m := mustBuildWith(t, BuildDynamo, dynamoBase)
		ops := opCounts(m.Graph.Node)
		L := dynamoBase.Layers
		for op, want := range map[string]int{"ReduceMean": 2*L + 1, "Pow": 2*L + 1, "Reciprocal": 2*L + 1, "Softmax": L, "IsNaN": L,
			"MatMul": 7*L + 1 + 2*L + 1, "Constant": 0, "RMSNormalization": 0, "Attention": 0} {
			if ops[op] != want {
				t.Errorf("%d %s nodes, want %d", ops[op], op, want)
			}
		}
		for _, n := range m.Graph.Node {
			if n.GetOpType() == "ReduceMean" && len(n.Input) != 2 {
				t.Errorf("%s: axes not an input (opset 18)", n.GetName())
			}
			if !strings.HasPrefix(n.GetName(), "node_"+n.GetOpType()+"_") {
				t.Errorf("node name %q", n.GetName())
			}
		}
		names := map[string]bool{}
		for _, in := range m.Graph.Initializer {
			names[in.GetName()] = true
		}
		for _, want := range []string{"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.norm.weight"} {
			if !names[want] {
				t.Errorf("no initializer %q", want)
			}
		}
		if names["model.layers.0.self_attn.q_proj.weight"] {
			t.Error("q_proj's weight kept under its parameter name: the optimizer folds its Transpose into val_N")
		}
		// The first q_proj MatMul: scopes down to the Linear module, FX name linear.
		found := false
		for _, n := range m.Graph.Node {
			md := NodeMeta(n)
			if n.GetOpType() == "MatMul" && md["pkg.torch.onnx.name_scopes"] == "['', 'model', 'model.layers.0', 'model.layers.0.self_attn', 'model.layers.0.self_attn.q_proj', 'linear']" {
				found = true
				if !strings.Contains(md["namespace"], "model.layers.0.self_attn.q_proj: torch.nn.modules.linear.Linear/linear: aten.linear.default") {
					t.Errorf("namespace %q", md["namespace"])
				}
				if n.Output[0] != "linear" {
					t.Errorf("q_proj output %q, want the FX name linear", n.Output[0])
				}
			}
		}
		if !found {
			t.Error("no MatMul with layer 0's q_proj name scopes")
		}
	})
	t.Run("opset23", func(t *testing.T) {
		m := mustBuildWith(t, BuildDynamo, dynamoWith(func(d *DynamoConfig) { d.Opset = 23 }))
		ops := opCounts(m.Graph.Node)
		L := dynamoBase.Layers
		for op, want := range map[string]int{"RMSNormalization": 2*L + 1, "Attention": L, "ReduceMean": 0, "Softmax": 0} {
			if ops[op] != want {
				t.Errorf("%d %s nodes, want %d", ops[op], op, want)
			}
		}
	})
	t.Run("functions", func(t *testing.T) {
		m := mustBuildWith(t, BuildDynamo, dynamoWith(func(d *DynamoConfig) { d.Functions = true }))
		L := dynamoBase.Layers
		if len(m.Functions) != L+1 {
			t.Fatalf("%d functions, want %d layers + torchlib's softmax", len(m.Functions), L)
		}
		calls := 0
		for _, n := range m.Graph.Node {
			if n.GetDomain() == dynamoModuleDomain {
				calls++
			}
		}
		if got := opCounts(m.Graph.Node)["MatMul"]; got != 2 {
			t.Errorf("%d MatMul nodes in the main graph, want 2 (rotary, lm_head): the layers' are in their functions", got)
		}
		if calls != L {
			t.Errorf("%d layer calls, want %d", calls, L)
		}
		for _, f := range m.Functions {
			if f.GetDomain() != dynamoModuleDomain {
				continue
			}
			if got := opCounts(f.Node); got["MatMul"] != 9 || got["aten_softmax_no_dtype"] != 1 {
				t.Errorf("layer function ops %v", got)
			}
		}
	})
}

// TestJudgeDynamo: onnxruntime runs each dynamo layout and gives the twin's
// logits, with an empty past and over a non-empty one (and the presents).
func TestJudgeDynamo(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    DynamoConfig
	}{
		{"opset18", dynamoBase},
		{"opset18_mha", dynamoWith(func(d *DynamoConfig) { d.KVHeads = 4 })},
		{"opset23", dynamoWith(func(d *DynamoConfig) { d.Opset = 23 })},
		{"functions", dynamoWith(func(d *DynamoConfig) { d.Functions = true })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ort := judge.ORT(t)
			twin := tt.d.Twin()
			mp, tp := saveModel(t, mustBuildWith(t, BuildDynamo, tt.d)), saveModel(t, mustBuild(t, twin))
			run := func(path string, f map[string]*npy.Array) map[string]*npy.Array {
				out, err := ort.Run(path, f, nil)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			// Control: other weights give other logits (the comparison can fail).
			other := tt.d
			other.Seed++
			f0 := feeds(t, twin, sample(twin, 3, 2, 4, 0), 0, nil)
			if d := stats.RelMax(float32s(t, run(saveModel(t, mustBuildWith(t, BuildDynamo, other)), f0)["logits"]), float32s(t, run(tp, f0)["logits"])); d < 1e-2 {
				t.Errorf("another seed's model is only %.3g from the twin", d)
			}
			const T, k = 9, 2
			in := sample(twin, 3, 2, T, 0)
			first := refInput{ids: columns(in.ids, 0, T-k), mask: columns(in.mask, 0, T-k)}
			last := refInput{ids: columns(in.ids, T-k, T), mask: in.mask}
			past := run(tp, feeds(t, twin, first, 0, nil))
			for _, c := range []struct {
				name string
				f    map[string]*npy.Array
			}{
				{"no past", feeds(t, twin, in, 0, nil)},
				{fmt.Sprintf("past %d", T-k), feeds(t, twin, last, T-k, past)},
			} {
				got, want := run(mp, c.f), run(tp, c.f)
				for name, w := range want {
					g, ok := got[name]
					if !ok {
						t.Errorf("%s: no output %s", c.name, name)
						continue
					}
					d := stats.RelMax(float32s(t, g), float32s(t, w))
					if name == "logits" {
						t.Logf("%s %s: max |dynamo − twin| / max |twin| = %.3g", tt.name, c.name, d)
					}
					if d > 1e-5 {
						t.Errorf("%s: %s: max |dynamo − twin| / max |twin| = %.3g, want ≤ 1e-5", c.name, name, d)
					}
				}
			}
		})
	}
}
