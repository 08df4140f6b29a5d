package modelgen

import (
	"fmt"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// msDomain is onnxruntime's contrib-op domain.
const msDomain = "com.microsoft"

// A GPT-2 in the layout onnxruntime's transformer optimizer writes (what
// Olive's OrtTransformersOptimization pass and onnxruntime's
// models/gpt2/convert_to_onnx.py produce): optimize_model(model_type="gpt2")
// over gpt2_helper's export of GPT2LMHeadModel with past state.
// docs/design/formats.md (section 3) lists the optimizer code each part
// follows. The weights are the plain GPT-2 twin's (OptimizedGPT2Twin): the
// initializers are taken from the twin by name.

// OptimizedGPT2Twin is the plain GPT-2 (torch layout) whose weights
// BuildOptimizedGPT2 fuses: KV cache, attention mask and position_ids inputs
// (gpt2_helper's GPT2LMHeadModel), the lm_head a folded [hidden, vocab]
// initializer onnx::MatMul_N, as torch's export writes GPT-2's tied head.
// Its values are drawn apart from the embedding's (TiedEmbeddings off): tied
// to a unit-variance random embedding the logits have a standard deviation
// of √hidden and perplexities of 1e18, which say nothing about a prune.
func OptimizedGPT2Twin(layers, hidden, heads int, seed int64, opset int) Config {
	return Config{Arch: GPT2, Layers: layers, Hidden: hidden, Heads: heads, Seed: seed, Opset: opset,
		KVCache: true, AttentionMask: true, PositionIDs: true, TransposedWeights: true}
}

// BuildOptimizedGPT2 returns the transformer optimizer's output for the GPT-2
// twin c (made by OptimizedGPT2Twin, any layer count, width and opset 13..21).
//
// Interface (gpt2_helper.export_onnx): input_ids, position_ids,
// attention_mask (int64), past_i [2, batch_size, heads, past_seq_len,
// head_size] (key and value stacked); logits, present_i [2, batch_size,
// heads, total_seq_len, head_size].
//
// Nodes: the embeddings' Gathers and Add; layer 0's ln_1 stays a
// LayerNormalization (default domain); each layer's attention is one
// com.microsoft Attention (FusionGptAttention: c_attn's [H, 3H] weight and
// bias, attention_mask cast to int32, past_i → present_i, num_heads,
// unidirectional=1) and a MatMul by c_proj's weight; every later norm is a
// SkipLayerNormalization (FusionSkipLayerNormalization, then
// FusionBiasSkipLayerNormalization) reading the branch's MatMul, the stream,
// γ, β and the branch's bias, whose 4th output is the stream (not on the
// final norm, whose sum nothing else reads); the MLP is MatMul (c_fc, from
// Gpt2OnnxModel.postprocess's Gemm rewrite), FastGelu(x, c_fc bias)
// (FusionFastGelu, then FusionBiasGelu) and MatMul (c_proj); the lm_head
// MatMul writes logits.
func BuildOptimizedGPT2(c Config) (*pb.ModelProto, error) {
	c = c.defaults()
	want := OptimizedGPT2Twin(c.Layers, c.Hidden, c.Heads, c.Seed, c.Opset).defaults()
	want.FFN, want.Vocab, want.MaxPos = c.FFN, c.Vocab, c.MaxPos
	if c != want {
		return nil, fmt.Errorf("%w: the optimized GPT-2 is built from OptimizedGPT2Twin's config, got %s", ErrConfig, c)
	}
	twin, err := Build(c)
	if err != nil {
		return nil, err
	}
	inits := map[string]*pb.TensorProto{}
	for _, t := range twin.GetGraph().GetInitializer() {
		inits[t.GetName()] = t
	}
	lmHead := ""
	for _, n := range twin.GetGraph().GetNode() {
		if n.GetOpType() == "MatMul" && len(n.Output) == 1 && n.Output[0] == "logits" {
			lmHead = n.Input[1]
		}
	}
	if inits[lmHead] == nil {
		return nil, fmt.Errorf("modelgen: the GPT-2 twin has no folded lm_head weight")
	}

	g := &pb.GraphProto{Name: proto.String("main_graph")}
	hd := c.Hidden / c.Heads
	const (
		batch, seq, past, total = "batch_size", "seq_len", "past_seq_len", "total_seq_len"
	)
	g.Input = append(g.Input, onnx.TensorInfo("input_ids", tInt64, batch, seq), onnx.TensorInfo("position_ids", tInt64, batch, seq),
		onnx.TensorInfo("attention_mask", tInt64, batch, total))
	g.Output = append(g.Output, onnx.TensorInfo("logits", tFloat, batch, seq, c.Vocab))
	for i := 0; i < c.Layers; i++ {
		g.Input = append(g.Input, onnx.TensorInfo(fmt.Sprintf("past_%d", i), tFloat, 2, batch, c.Heads, past, hd))
		g.Output = append(g.Output, onnx.TensorInfo(fmt.Sprintf("present_%d", i), tFloat, 2, batch, c.Heads, total, hd))
	}
	used := map[string]bool{}
	w := func(name string) string {
		if inits[name] == nil {
			panic("modelgen: twin weight " + name + " missing") // programming error: the twin names every weight
		}
		if !used[name] {
			used[name] = true
			g.Initializer = append(g.Initializer, proto.Clone(inits[name]).(*pb.TensorProto))
		}
		return name
	}
	node := func(name, op, domain string, in, out []string, attrs ...*pb.AttributeProto) {
		n := &pb.NodeProto{OpType: proto.String(op), Input: in, Output: out, Attribute: attrs}
		if name != "" {
			n.Name = proto.String(name)
		}
		if domain != "" {
			n.Domain = proto.String(domain)
		}
		g.Node = append(g.Node, n)
	}
	eps := onnx.AttrFloat("epsilon", lnEps)

	// Embeddings (the export's nodes, untouched by the optimizer: the
	// position Gather reads a graph input, so no EmbedLayerNormalization).
	node("/transformer/wte/Gather", "Gather", "", []string{w("transformer.wte.weight"), "input_ids"}, []string{"/transformer/wte/Gather_output_0"})
	node("/transformer/wpe/Gather", "Gather", "", []string{w("transformer.wpe.weight"), "position_ids"}, []string{"/transformer/wpe/Gather_output_0"})
	stream := "/transformer/Add_output_0"
	node("/transformer/Add", "Add", "", []string{"/transformer/wte/Gather_output_0", "/transformer/wpe/Gather_output_0"}, []string{stream})
	// FusionUtils.cast_graph_input_to_int32: an unnamed Cast of the mask.
	node("", "Cast", "", []string{"attention_mask"}, []string{"attention_mask_int32"}, onnx.AttrInt("to", int64(pb.TensorProto_INT32)))

	fc := 0 // FullyConnect_MatMul_N: postprocess's Gemm rewrites, in graph order
	skip := 0
	// skipNorm is SkipLayerNormalization(branch, stream, γ, β, bias); with
	// sum it also writes the new stream at output 3.
	skipNorm := func(branch, key, bias, out, sum string) {
		outs := []string{out}
		if sum != "" {
			outs = append(outs, "", "", sum)
		}
		node(fmt.Sprintf("SkipLayerNorm_AddBias_%d", skip), "SkipLayerNormalization", msDomain,
			[]string{branch, stream, w(key + ".weight"), w(key + ".bias"), w(bias)}, outs, eps)
		skip++
		if sum != "" {
			stream = sum
		}
	}
	var x string // the input norm's output of the current layer
	for i := 0; i < c.Layers; i++ {
		key := fmt.Sprintf("transformer.h.%d", i)
		if i == 0 {
			x = "/transformer/h.0/ln_1/LayerNormalization_output_0"
			node("LayerNorm_0", "LayerNormalization", "", []string{stream, w(key + ".ln_1.weight"), w(key + ".ln_1.bias")}, []string{x}, eps)
		}
		attn := fmt.Sprintf("GptAttention_%d", i)
		node(attn, "Attention", msDomain,
			[]string{x, w(key + ".attn.c_attn.weight"), w(key + ".attn.c_attn.bias"), "attention_mask_int32", fmt.Sprintf("past_%d", i)},
			[]string{attn + "_output", fmt.Sprintf("present_%d", i)},
			onnx.AttrInt("num_heads", int64(c.Heads)), onnx.AttrInt("unidirectional", 1))
		node(attn+"_matmul", "MatMul", "", []string{attn + "_output", w(key + ".attn.c_proj.weight")}, []string{attn + "_matmul_output"})
		fcIn := fmt.Sprintf("FullyConnect_MatMul_%d", fc)
		skipNorm(attn+"_matmul_output", key+".ln_2", key+".attn.c_proj.bias", fcIn+"_input", fmt.Sprintf("/transformer/h.%d/Add_output_0", i))
		node(fcIn, "MatMul", "", []string{fcIn + "_input", w(key + ".mlp.c_fc.weight")}, []string{fcIn + "_output"})
		fcOut := fmt.Sprintf("FullyConnect_MatMul_%d", fc+1)
		node(fmt.Sprintf("FastGelu_AddBias_%d", i), "FastGelu", msDomain, []string{fcIn + "_output", w(key + ".mlp.c_fc.bias")}, []string{fcOut + "_input"})
		node(fcOut, "MatMul", "", []string{fcOut + "_input", w(key + ".mlp.c_proj.weight")}, []string{fcOut + "_output"})
		fc += 2
		if i+1 < c.Layers {
			x = fmt.Sprintf("/transformer/h.%d/ln_1/LayerNormalization_output_0", i+1)
			skipNorm(fcOut+"_output", fmt.Sprintf("transformer.h.%d.ln_1", i+1), key+".mlp.c_proj.bias", x, fmt.Sprintf("/transformer/h.%d/Add_1_output_0", i))
		} else {
			x = "/transformer/ln_f/LayerNormalization_output_0"
			skipNorm(fcOut+"_output", "transformer.ln_f", key+".mlp.c_proj.bias", x, "")
		}
	}
	node("/lm_head/MatMul", "MatMul", "", []string{x, w(lmHead)}, []string{"logits"})

	return &pb.ModelProto{
		IrVersion:    proto.Int64(irVersion(c.Opset)),
		ProducerName: proto.String("pytorch"),
		OpsetImport: []*pb.OperatorSetIdProto{
			{Domain: proto.String(""), Version: proto.Int64(int64(c.Opset))},
			{Domain: proto.String(msDomain), Version: proto.Int64(1)},
		},
		Graph: g,
	}, nil
}
