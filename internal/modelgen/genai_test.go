package modelgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// genaiBase: head size 16 (onnxruntime's CPU GroupQueryAttention with
// do_rotary needs a multiple of 16), grouped-query attention, and an FFN width
// that is not a multiple of the 32-value block (down_proj's last block is padded).
var genaiBase = GenAIConfig{Layers: 3, Hidden: 64, Heads: 4, KVHeads: 2, FFN: 80, Vocab: 256, MaxPos: 64, Seed: 11}

func genaiWith(f func(g *GenAIConfig)) GenAIConfig {
	g := genaiBase
	f(&g)
	return g
}

func mustBuildGenAI(t *testing.T, g GenAIConfig) (*pb.ModelProto, []byte) {
	t.Helper()
	m, cfg, err := BuildGenAI(g)
	if err != nil {
		t.Fatal(err)
	}
	return m, cfg
}

func TestGenAIDeterministic(t *testing.T) {
	for _, p := range []string{GenAIFP32, GenAIFP16, GenAIInt4, GenAIInt8} {
		g := genaiWith(func(g *GenAIConfig) { g.Precision = p })
		m1, c1 := mustBuildGenAI(t, g)
		m2, c2 := mustBuildGenAI(t, g)
		b1, err := Marshal(m1)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := Marshal(m2)
		if err != nil {
			t.Fatal(err)
		}
		if string(b1) != string(b2) || string(c1) != string(c2) {
			t.Errorf("%s: two builds differ", p)
		}
	}
}

func TestGenAIConfigErrors(t *testing.T) {
	for name, g := range map[string]GenAIConfig{
		"head size 8": genaiWith(func(g *GenAIConfig) { g.Heads, g.KVHeads = 8, 8 }),
		"opset 13":    genaiWith(func(g *GenAIConfig) { g.Opset = 13 }),
		"precision":   genaiWith(func(g *GenAIConfig) { g.Precision = "int3" }),
		"block 24":    genaiWith(func(g *GenAIConfig) { g.Precision, g.BlockSize = GenAIInt4, 24 }),
		"accuracy 5":  genaiWith(func(g *GenAIConfig) { g.Precision, g.AccuracyLevel = GenAIInt4, 5 }),
		"kv heads":    genaiWith(func(g *GenAIConfig) { g.KVHeads = 3 }),
		"no layers":   genaiWith(func(g *GenAIConfig) { g.Layers = 0 }),
		"huge":        genaiWith(func(g *GenAIConfig) { g.Hidden, g.Heads, g.KVHeads = 1<<14, 1<<10, 1<<10 }),
		"zero config": {},
	} {
		if _, _, err := BuildGenAI(g); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestGenAIStructure checks the builder's layout: interface order, op and
// domain per node, the Skip…Normalization residual chain, GroupQueryAttention's
// inputs, the quantized weights' shapes and genai_config.json.
func TestGenAIStructure(t *testing.T) {
	for _, g := range []GenAIConfig{
		genaiBase,
		genaiWith(func(g *GenAIConfig) { g.Precision = GenAIFP16; g.Opset = 14 }),
		genaiWith(func(g *GenAIConfig) { g.Precision = GenAIInt4; g.Asymmetric = true; g.AccuracyLevel = 4 }),
		genaiWith(func(g *GenAIConfig) { g.Precision = GenAIInt8; g.BlockSize = 16 }),
	} {
		t.Run(g.defaults().Precision, func(t *testing.T) {
			m, cfgJSON := mustBuildGenAI(t, g)
			g := g.defaults()
			L := g.Layers
			if m.GetProducerName() != "onnxruntime-genai" || len(m.OpsetImport) != 2 ||
				m.OpsetImport[0].GetVersion() != int64(g.Opset) || m.OpsetImport[1].GetDomain() != "com.microsoft" {
				t.Errorf("producer %q, opsets %v", m.GetProducerName(), m.OpsetImport)
			}
			var ins, outs []string
			for _, v := range m.Graph.Input {
				ins = append(ins, v.GetName())
			}
			for _, v := range m.Graph.Output {
				outs = append(outs, v.GetName())
			}
			wantIn, wantOut := []string{"input_ids", "attention_mask"}, []string{"logits"}
			for _, kv := range []string{"key", "value"} {
				for i := 0; i < L; i++ {
					wantIn = append(wantIn, fmt.Sprintf("past_key_values.%d.%s", i, kv))
					wantOut = append(wantOut, fmt.Sprintf("present.%d.%s", i, kv))
				}
			}
			if fmt.Sprint(ins) != fmt.Sprint(wantIn) || fmt.Sprint(outs) != fmt.Sprint(wantOut) {
				t.Errorf("inputs %v\noutputs %v", ins, outs)
			}

			// Every input is defined before use; count ops by domain.
			defined := map[string]bool{"": true}
			for _, n := range append(m.Graph.Input, nil) {
				if n != nil {
					defined[n.GetName()] = true
				}
			}
			for _, init := range m.Graph.Initializer {
				defined[init.GetName()] = true
			}
			count := map[string]int{}
			byName := map[string]*pb.NodeProto{}
			for _, n := range m.Graph.Node {
				for _, in := range n.Input {
					if !defined[in] {
						t.Fatalf("node %s reads %q before it is defined", n.GetName(), in)
					}
				}
				for _, o := range n.Output {
					defined[o] = true
				}
				count[n.GetDomain()+":"+n.GetOpType()]++
				byName[n.GetName()] = n
			}
			mm, matmul := "MatMul", ":MatMul"
			if g.bits() != 0 {
				mm, matmul = "MatMulNBits", "com.microsoft:MatMulNBits"
			}
			want := map[string]int{
				":SimplifiedLayerNormalization":                  1,
				"com.microsoft:SkipSimplifiedLayerNormalization": 2 * L,
				"com.microsoft:GroupQueryAttention":              L,
				matmul:                                           5*L + 1,
				":Sigmoid":                                       L,
				":Mul":                                           2 * L,
				":ReduceSum":                                     1,
				":Gather":                                        2,
				":Constant":                                      2,
			}
			for op, n := range want {
				if count[op] != n {
					t.Errorf("%d %s nodes, want %d", count[op], op, n)
				}
			}
			if g.bits() == 0 && count["com.microsoft:MatMulNBits"] != 0 {
				t.Error("float model has MatMulNBits")
			}

			// The residual chain: layer i's input norm adds layer i-1's
			// down_proj output to the residual its post-attention norm left.
			suffix := ""
			if g.bits() != 0 {
				suffix = fmt.Sprintf("_Q%d", g.bits())
			}
			for i := 1; i <= L; i++ {
				name := fmt.Sprintf("/model/layers.%d/input_layernorm/SkipLayerNorm", i)
				if i == L {
					name = fmt.Sprintf("/model/layers.%d/final_norm_layernorm/SkipLayerNorm", i)
				}
				n := byName[name]
				post := byName[fmt.Sprintf("/model/layers.%d/post_attention_layernorm/SkipLayerNorm", i-1)]
				down := byName[fmt.Sprintf("/model/layers.%d/mlp/down_proj/MatMul%s", i-1, suffix)]
				if n == nil || post == nil || down == nil {
					t.Fatalf("layer %d: missing norm or down_proj nodes", i)
				}
				if n.Input[0] != post.Output[3] || n.Input[1] != down.Output[0] {
					t.Errorf("%s reads %v, want [%s %s …]", name, n.Input, post.Output[3], down.Output[0])
				}
				if (i == L) != (len(n.Output) == 1) {
					t.Errorf("%s has %d outputs", name, len(n.Output))
				}
			}
			for i := 0; i < L; i++ {
				a := byName[fmt.Sprintf("/model/layers.%d/attn/GroupQueryAttention", i)]
				if a == nil || len(a.Input) != 12 || a.Input[7] != "cos_cache" || a.Input[8] != "sin_cache" ||
					a.Input[3] != fmt.Sprintf("past_key_values.%d.key", i) || a.Output[2] != fmt.Sprintf("present.%d.value", i) ||
					a.Input[5] != "/model/attn_mask_reformat/attn_mask_subgraph/Sub/Cast/output_0" {
					t.Fatalf("layer %d GroupQueryAttention: %v", i, a)
				}
				for _, at := range a.Attribute {
					if at.GetName() == "do_rotary" && at.GetI() != 1 {
						t.Errorf("do_rotary = %d", at.GetI())
					}
				}
			}
			if n := byName["/lm_head/MatMul"+suffix]; n == nil || n.Output[0] != "logits" || !strings.HasPrefix(n.GetOpType(), mm) {
				t.Errorf("lm_head: %v", n)
			}

			// Weights: types and shapes.
			hd := g.Hidden / g.Heads
			for _, init := range m.Graph.Initializer {
				name, dt := init.GetName(), pb.TensorProto_DataType(init.GetDataType())
				switch {
				case suffix != "" && strings.HasSuffix(name, suffix):
					if dt != pb.TensorProto_UINT8 || len(init.Dims) != 3 || init.Dims[2] != int64(g.BlockSize*g.bits()/8) {
						t.Errorf("%s: %v %v", name, dt, init.Dims)
					}
				case strings.HasSuffix(name, "_zero_points"):
					if dt != pb.TensorProto_UINT8 || !g.Asymmetric {
						t.Errorf("%s: %v", name, dt)
					}
				case name == "cos_cache" || name == "sin_cache":
					if fmt.Sprint(init.Dims) != fmt.Sprint([]int64{int64(g.MaxPos), int64(hd / 2)}) {
						t.Errorf("%s dims %v", name, init.Dims)
					}
				}
				if g.Precision == GenAIFP16 && dt != pb.TensorProto_FLOAT16 {
					t.Errorf("fp16 model: %s is %v", name, dt)
				}
			}

			var cfg struct {
				Model struct {
					Decoder struct {
						Filename          string
						HeadSize          int `json:"head_size"`
						NumHiddenLayers   int `json:"num_hidden_layers"`
						NumAttentionHeads int `json:"num_attention_heads"`
						NumKeyValueHeads  int `json:"num_key_value_heads"`
						Inputs            map[string]string
						Outputs           map[string]string
					}
					ContextLength int `json:"context_length"`
				}
			}
			if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
				t.Fatal(err)
			}
			d := cfg.Model.Decoder
			if d.Filename != "model.onnx" || d.HeadSize != hd || d.NumHiddenLayers != L || d.NumAttentionHeads != g.Heads ||
				d.NumKeyValueHeads != g.KVHeads || d.Inputs["past_key_names"] != "past_key_values.%d.key" ||
				d.Outputs["present_value_names"] != "present.%d.value" || cfg.Model.ContextLength != g.MaxPos {
				t.Errorf("genai_config.json: %+v", cfg)
			}
			if cuda := strings.Contains(string(cfgJSON), `"enable_cuda_graph": "0"`); cuda != (g.Precision == GenAIFP16) {
				t.Errorf("genai_config.json: CUDA provider options %v for precision %s", cuda, g.Precision)
			}
			if !strings.Contains(string(cfgJSON), "\n    \"search\": {") || !strings.Contains(string(cfgJSON), "\"temperature\": 1.0") {
				t.Errorf("genai_config.json is not written as json.dump(indent=4) writes it:\n%s", cfgJSON)
			}
		})
	}
}

func TestWriteGenAI(t *testing.T) {
	dir := t.TempDir()
	if err := WriteGenAI(dir, genaiBase); err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	want, cfg := mustBuildGenAI(t, genaiBase)
	if !proto.Equal(m.Proto, want) {
		t.Error("model.onnx differs from BuildGenAI's model")
	}
	got, err := os.ReadFile(filepath.Join(dir, "genai_config.json"))
	if err != nil || string(got) != string(cfg) {
		t.Errorf("genai_config.json: %v, %q", err, got)
	}
	if err := WriteGenAI(dir, GenAIConfig{}); !errors.Is(err, ErrConfig) {
		t.Errorf("zero config: err = %v, want ErrConfig", err)
	}
}

// saveGenAI writes model.onnx and genai_config.json to a new directory and
// returns the model's path.
func saveGenAI(t *testing.T, m *pb.ModelProto, cfg []byte) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	if err := onnx.Save(m, path, onnx.SaveOptions{External: onnx.ExternalNever}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "genai_config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
