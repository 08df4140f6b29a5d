package distill

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokens"
	"google.golang.org/protobuf/proto"
)

// graphIndex finds tensors of an exported model by the names the exporter
// gave its nodes and initializers.
type graphIndex struct {
	t     *testing.T
	inits map[string]*pb.TensorProto
	prod  map[string]*pb.NodeProto // value → producer
	nodes map[string]*pb.NodeProto // node name → node
}

func indexModel(t *testing.T, m *pb.ModelProto) *graphIndex {
	g := &graphIndex{t: t, inits: map[string]*pb.TensorProto{}, prod: map[string]*pb.NodeProto{}, nodes: map[string]*pb.NodeProto{}}
	for _, in := range m.GetGraph().GetInitializer() {
		g.inits[in.GetName()] = in
	}
	for _, n := range m.GetGraph().GetNode() {
		g.nodes[n.GetName()] = n
		for _, o := range n.GetOutput() {
			g.prod[o] = n
		}
	}
	return g
}

// value returns the float data of an initializer or a Constant's output.
func (g *graphIndex) value(name string) []float32 {
	g.t.Helper()
	tp := g.inits[name]
	if tp == nil {
		if n := g.prod[name]; n != nil && n.GetOpType() == "Constant" {
			tp = n.GetAttribute()[0].GetT()
		}
	}
	if tp == nil {
		g.t.Fatalf("no initializer or constant %q", name)
	}
	v, err := onnx.Float32s(tp)
	if err != nil {
		g.t.Fatal(err)
	}
	return v
}

// input returns the data of input i of node name.
func (g *graphIndex) input(node string, i int) []float32 {
	g.t.Helper()
	n := g.nodes[node]
	if n == nil || len(n.GetInput()) <= i {
		g.t.Fatalf("no node %q with input %d", node, i)
	}
	return g.value(n.GetInput()[i])
}

func (g *graphIndex) attrFloat(node, attr string) float32 {
	for _, a := range g.nodes[node].GetAttribute() {
		if a.GetName() == attr {
			return a.GetF()
		}
	}
	g.t.Fatalf("node %q has no attribute %s", node, attr)
	return 0
}

// llama8Names maps layer i's parameters to their initializers in llama8.
func llama8Names(g *graphIndex, i int) map[string]string {
	p := fmt.Sprintf("/model/layers.%d/", i)
	k := fmt.Sprintf("model.layers.%d.", i)
	names := map[string]string{"attn_norm": k + "input_layernorm.weight", "mlp_norm": k + "post_attention_layernorm.weight"}
	for param, node := range map[string]string{"q": "self_attn/q_proj/MatMul", "k": "self_attn/k_proj/MatMul",
		"v": "self_attn/v_proj/MatMul", "o": "self_attn/o_proj/MatMul", "gate": "mlp/gate_proj/MatMul",
		"up": "mlp/up_proj/MatMul", "down": "mlp/down_proj/MatMul"} {
		names[param] = g.nodes[p+node].GetInput()[1]
	}
	return names
}

func llama8Layer(g *graphIndex, i int, rot *Rotary) *Layer {
	p := fmt.Sprintf("/model/layers.%d/", i)
	n := llama8Names(g, i)
	return &Layer{Kind: Llama, Hidden: 128, Heads: 4, KVHeads: 4, HeadDim: 32, FFN: 384,
		Eps: g.input(p+"input_layernorm/Add", 1)[0], Scale: g.input(p+"self_attn/Div_2", 1)[0], Rotary: rot,
		AttnNorm: g.value(n["attn_norm"]), MLPNorm: g.value(n["mlp_norm"]),
		Q: g.value(n["q"]), K: g.value(n["k"]), V: g.value(n["v"]), O: g.value(n["o"]),
		Gate: g.value(n["gate"]), Up: g.value(n["up"]), Down: g.value(n["down"])}
}

func gpt2Layer(g *graphIndex, i int) *Layer {
	p := fmt.Sprintf("/transformer/h.%d/", i)
	k := fmt.Sprintf("transformer.h.%d.", i)
	l := &Layer{Kind: GPT2, Hidden: 128, Heads: 4, KVHeads: 4, HeadDim: 32, FFN: 512,
		Eps: g.attrFloat(p+"ln_1/LayerNormalization", "epsilon"), Scale: float32(math.Sqrt(32)),
		AttnNorm: g.value(k + "ln_1.weight"), AttnNormBias: g.value(k + "ln_1.bias"),
		MLPNorm: g.value(k + "ln_2.weight"), MLPNormBias: g.value(k + "ln_2.bias"),
		O: g.value(k + "attn.c_proj.weight"), OBias: g.value(k + "attn.c_proj.bias"),
		Up: g.value(k + "mlp.c_fc.weight"), UpBias: g.value(k + "mlp.c_fc.bias"),
		Down: g.value(k + "mlp.c_proj.weight"), DownBias: g.value(k + "mlp.c_proj.bias")}
	l.Q, l.K, l.V = SplitQKV(g.value(k+"attn.c_attn.weight"), 128, 128)
	l.QBias, l.KBias, l.VBias = SplitQKV(g.value(k+"attn.c_attn.bias"), 1, 128)
	return l
}

// boundaries runs the model on calibration rows 0..1 and returns the
// residual stream at every layer boundary, per row.
func boundaries(t *testing.T, name string, m *pb.ModelProto) [][][]float32 {
	hidden, _ := testenv.Streams(t, name)
	set, err := tokens.Read(testenv.TestFile(t, "tokens/calib_train_16x128.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ids := append(append([]int64(nil), set.Rows[0]...), set.Rows[1]...)
	in, err := runtime.NewInt64([]int{2, 128}, ids)
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.New(m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(map[string]*runtime.Tensor{"input_ids": in}, hidden)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][][]float32, len(hidden))
	for i, h := range hidden {
		d := out[h].Float32Data()
		res[i] = [][]float32{d[:len(d)/2], d[len(d)/2:]}
	}
	return res
}

// sharedModel loads the shared model name and indexes its graph.
func sharedModel(t *testing.T, name string) (*onnx.Model, *graphIndex) {
	t.Helper()
	m, err := onnx.Load(testenv.TestModel(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return m, indexModel(t, m.Proto)
}

// llama8Rotary is llama8's exported rotary tables.
func (g *graphIndex) llama8Rotary() *Rotary {
	return &Rotary{Cos: g.input("/model/rotary_emb/Slice", 0), Sin: g.input("/model/rotary_emb/Slice_1", 0)}
}

// llama8Layers reads llama8's eight layers.
func llama8Layers(g *graphIndex) []*Layer {
	rot := g.llama8Rotary()
	var layers []*Layer
	for i := 0; i < 8; i++ {
		layers = append(layers, llama8Layer(g, i, rot))
	}
	return layers
}

// TestSharedModelLayers: every layer of the shared models, its weights read
// from the ONNX file by name, computes in Forward and in the gorgonia graph
// what the Go runtime computes for it between its cached boundaries.
func TestSharedModelLayers(t *testing.T) {
	for _, name := range []string{"llama8", "gpt2_6"} {
		t.Run(name, func(t *testing.T) {
			m, g := sharedModel(t, name)
			var rot *Rotary
			if name == "llama8" {
				rot = g.llama8Rotary()
				// torch rounds its float32 cos/sin differently in the last
				// bits (measured 3.8e-6 of the largest value).
				want := RotaryTables(32, 512, 10000)
				if d := stats.RelMax(rot.Cos, convert[float64](want.Cos)) + stats.RelMax(rot.Sin, convert[float64](want.Sin)); d > 1e-5 {
					t.Errorf("the export's rotary tables differ from RotaryTables by %.2g", d)
				}
			}
			hs := boundaries(t, name, m.Proto)
			var worst float64
			defer func() { t.Logf("largest difference from the runtime: %.2g of max |y|", worst) }()
			for i := 0; i+1 < len(hs); i++ {
				var l *Layer
				if name == "llama8" {
					l = llama8Layer(g, i, rot)
				} else {
					l = gpt2Layer(g, i)
				}
				for r := range hs[i] {
					want := convert[float64](hs[i+1][r])
					got, err := Forward(l, hs[i][r], 128)
					if err != nil {
						t.Fatal(err)
					}
					e := stats.RelMax(got, want)
					worst = math.Max(worst, e)
					if e > 1e-6 {
						t.Errorf("layer %d row %d: Forward differs from the runtime by %.2g", i, r, e)
					}
					if i == 0 && r == 0 {
						if e := stats.RelMax(graphForward(t, l, hs[i][r], 1, 128), want); e > 1e-6 {
							t.Errorf("layer %d: the gorgonia graph differs from the runtime by %.2g", i, e)
						}
					}
				}
			}
		})
	}
}

// gpt2Names maps layer i's parameters to gpt2_6's initializers; q, k, v
// and their biases live fused in c_attn.
func gpt2Names(i int) map[string]string {
	k := fmt.Sprintf("transformer.h.%d.", i)
	return map[string]string{"attn_norm": k + "ln_1.weight", "attn_norm_bias": k + "ln_1.bias",
		"mlp_norm": k + "ln_2.weight", "mlp_norm_bias": k + "ln_2.bias",
		"o": k + "attn.c_proj.weight", "o_bias": k + "attn.c_proj.bias",
		"up": k + "mlp.c_fc.weight", "up_bias": k + "mlp.c_fc.bias",
		"down": k + "mlp.c_proj.weight", "down_bias": k + "mlp.c_proj.bias"}
}

// writeLayer returns a copy of m with layer l's weights in place of the
// initializers names maps them to (and c_attn for GPT-2).
func writeLayer(t *testing.T, m *pb.ModelProto, l *Layer, names map[string]string, cAttn string) *pb.ModelProto {
	out := proto.Clone(m).(*pb.ModelProto)
	data := map[string][]float32{}
	for _, p := range l.Params() {
		if n, ok := names[p.Name]; ok {
			data[n] = *p.Data
		}
	}
	if cAttn != "" {
		data[cAttn+".weight"] = JoinQKV(l.Q, l.K, l.V, l.Hidden, l.Heads*l.HeadDim)
		data[cAttn+".bias"] = JoinQKV(l.QBias, l.KBias, l.VBias, 1, l.Heads*l.HeadDim)
	}
	inits := out.GetGraph().GetInitializer()
	for i, in := range inits {
		if d, ok := data[in.GetName()]; ok {
			inits[i] = onnx.NewFloat32(in.GetName(), in.GetDims(), d)
			delete(data, in.GetName())
		}
	}
	if len(data) > 0 {
		t.Fatalf("initializers not found: %v", data)
	}
	return out
}

// TestTrainedLayerInRuntime: a layer of each shared model, trained a few
// steps toward a 2-layer window, written back into the model's
// initializers, runs in the Go runtime (fed the cached stream entering it)
// exactly as Forward computes it.
func TestTrainedLayerInRuntime(t *testing.T) {
	for _, name := range []string{"llama8", "gpt2_6"} {
		t.Run(name, func(t *testing.T) {
			m, g := sharedModel(t, name)
			const low = 2
			var l *Layer
			var names map[string]string
			cAttn := ""
			if name == "llama8" {
				rot := g.llama8Rotary()
				l, names = llama8Layer(g, low, rot), llama8Names(g, low)
			} else {
				l, names, cAttn = gpt2Layer(g, low), gpt2Names(low), fmt.Sprintf("transformer.h.%d.attn.c_attn", low)
			}
			hs := boundaries(t, name, m.Proto)
			fit := Rows{X: hs[low][:1], Y: hs[low+2][:1], T: 128}
			held := Rows{X: hs[low][1:], Y: hs[low+2][1:], T: 128}
			trained, rep, err := Train(context.Background(), l, fit, held, Options{Steps: 4, Batch: 1, LR: 1e-3, EvalEvery: 1})
			if err != nil {
				t.Fatal(err)
			}
			if rep.BestStep == 0 {
				t.Fatalf("training did not improve the held-out row: %+v", rep)
			}
			hidden, _ := testenv.Streams(t, name)
			s, err := runtime.New(writeLayer(t, m.Proto, trained, names, cAttn), runtime.Options{})
			if err != nil {
				t.Fatal(err)
			}
			x, err := runtime.NewFloat32([]int{1, 128, 128}, held.X[0])
			if err != nil {
				t.Fatal(err)
			}
			ids, err := runtime.NewInt64([]int{1, 128}, make([]int64, 128))
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.Run(map[string]*runtime.Tensor{hidden[low]: x, "input_ids": ids}, []string{hidden[low+1]})
			if err != nil {
				t.Fatal(err)
			}
			want, err := Forward(trained, held.X[0], 128)
			if err != nil {
				t.Fatal(err)
			}
			if e := stats.RelMax(out[hidden[low+1]].Float32Data(), convert[float64](want)); e > 1e-6 {
				t.Errorf("the runtime's output of the written layer differs from Forward by %.2g", e)
			} else {
				t.Logf("runtime vs Forward: %.2g of max |y| (held-out loss %.4f → %.4f)", e, rep.HeldBefore, rep.HeldAfter)
			}
		})
	}
}
