package modelgen

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// Models in the layout of the onnxruntime-genai model builder
// (src/python/py/models/builders/base.py; docs/design/formats.md lists what
// each part follows). The weights are those of the plain Llama twin
// (GenAIConfig.Twin): the same seed and parameter names give the same values.

// Precisions of a genai-layout model, as the builder's -p option.
const (
	GenAIFP32 = "fp32" // float32 weights and I/O (the builder's CPU fp32 model)
	GenAIFP16 = "fp16" // float16 weights, I/O and compute (its CUDA/DML/WebGPU fp16 model)
	GenAIInt4 = "int4" // 4-bit MatMulNBits projections, float32 I/O (its CPU int4 model)
	GenAIInt8 = "int8" // 8-bit MatMulNBits projections, float32 I/O (its int8 model)
)

// GenAIConfig describes a genai-builder model of a Llama decoder.
type GenAIConfig struct {
	Layers, Hidden, Heads int
	KVHeads               int // default Heads
	FFN                   int // default 2·Hidden
	Vocab                 int // default 256
	MaxPos                int // context_length: rows of cos_cache/sin_cache. Default 128
	Seed                  int64
	// Opset is the default-domain opset: 21 (default, today's builder) or any
	// of 14..20 (builders before mid-2025 wrote 14).
	Opset     int
	Precision string // GenAIFP32 (default), GenAIFP16, GenAIInt4 or GenAIInt8
	// Int4 and int8 only: BlockSize (default 32, the builder's), Asymmetric (the
	// builder's is_symmetric=false: zero_points inputs), AccuracyLevel (the
	// builder writes 4 for CPU; 0 leaves the attribute out, as onnxruntime's
	// quantizer does for 0).
	BlockSize     int
	Asymmetric    bool
	AccuracyLevel int
}

// defaults fills the sizes as the plain Llama's (Config.defaults), the opset,
// precision and block size.
func (g GenAIConfig) defaults() GenAIConfig {
	c := Config{Arch: Llama, Hidden: g.Hidden, Heads: g.Heads, KVHeads: g.KVHeads, FFN: g.FFN, Vocab: g.Vocab, MaxPos: g.MaxPos}.defaults()
	g.KVHeads, g.FFN, g.Vocab, g.MaxPos = c.KVHeads, c.FFN, c.Vocab, c.MaxPos
	g.Opset = cmp.Or(g.Opset, 21)
	g.Precision = cmp.Or(g.Precision, GenAIFP32)
	g.BlockSize = cmp.Or(g.BlockSize, 32)
	return g
}

// Twin is the plain Llama model (torch/optimum layout, KV cache, attention
// mask, positions from the mask) with the same weights; float16 for GenAIFP16.
func (g GenAIConfig) Twin() Config {
	g = g.defaults()
	return Config{Arch: Llama, Layers: g.Layers, Hidden: g.Hidden, Heads: g.Heads, KVHeads: g.KVHeads,
		FFN: g.FFN, Vocab: g.Vocab, MaxPos: g.MaxPos, Seed: g.Seed, KVCache: true, AttentionMask: true,
		TransposedWeights: true, Float16: g.Precision == GenAIFP16, Opset: 17}
}

// bits is the MatMulNBits width of the precision, 0 for float models.
func (g GenAIConfig) bits() int {
	switch g.Precision {
	case GenAIInt4:
		return 4
	case GenAIInt8:
		return 8
	}
	return 0
}

func (g GenAIConfig) validate() error {
	if err := g.Twin().defaults().validate(); err != nil {
		return err
	}
	if hd := g.Hidden / g.Heads; hd%16 != 0 {
		return fmt.Errorf("head size %d: onnxruntime's CPU GroupQueryAttention with do_rotary needs a multiple of 16", hd)
	}
	if g.Opset < 14 || g.Opset > 21 {
		return fmt.Errorf("Opset %d: the builder writes 14..21", g.Opset)
	}
	switch g.Precision {
	case GenAIFP32, GenAIFP16:
	case GenAIInt4, GenAIInt8:
		if g.BlockSize < 16 || g.BlockSize&(g.BlockSize-1) != 0 {
			return fmt.Errorf("BlockSize %d: want a power of 2 ≥ 16", g.BlockSize)
		}
		if g.AccuracyLevel < 0 || g.AccuracyLevel > 4 {
			return fmt.Errorf("AccuracyLevel %d: want 0..4", g.AccuracyLevel)
		}
	default:
		return fmt.Errorf("Precision %q: want %q, %q, %q or %q", g.Precision, GenAIFP32, GenAIFP16, GenAIInt4, GenAIInt8)
	}
	return nil
}

// genaiBuilder emits nodes with the builder's explicit names.
type genaiBuilder struct {
	g      GenAIConfig
	io     pb.TensorProto_DataType // the builder's io_dtype
	graph  *pb.GraphProto
	consts map[string]bool
}

func (b *genaiBuilder) node(name, op, domain string, inputs, outputs []string, attrs ...*pb.AttributeProto) {
	for _, in := range inputs {
		b.constant(in)
	}
	n := &pb.NodeProto{Name: proto.String(name), OpType: proto.String(op), Input: inputs, Output: outputs, Attribute: attrs}
	if domain != "" {
		n.Domain = proto.String(domain)
	}
	b.graph.Node = append(b.graph.Node, n)
}

// op is a one-output node whose output is NAME/output_0.
func (b *genaiBuilder) op(name, op string, inputs []string, attrs ...*pb.AttributeProto) string {
	out := name + "/output_0"
	b.node(name, op, "", inputs, []string{out}, attrs...)
	return out
}

// Constants the builder names /model/constants/INT64/[1] (1-D) or
// /model/constants/INT64/1 (scalar), made by Constant nodes
// /model/constant_nodes/… before their first use (make_constant).
var genaiConsts = map[string]*pb.TensorProto{
	"/model/constants/INT64/[1]": tensorI64("/model/constants/INT64/[1]", []int{1}, []int64{1}),
	"/model/constants/INT64/1":   tensorI64("/model/constants/INT64/1", nil, []int64{1}),
}

func (b *genaiBuilder) constant(name string) {
	t, ok := genaiConsts[name]
	if !ok || b.consts[name] {
		return
	}
	b.consts[name] = true
	node := "/model/constant_nodes" + name[len("/model/constants"):]
	b.graph.Node = append(b.graph.Node, &pb.NodeProto{Name: proto.String(node), OpType: proto.String("Constant"),
		Output: []string{name}, Attribute: []*pb.AttributeProto{onnx.AttrTensor("value", proto.Clone(t).(*pb.TensorProto))}})
}

func (b *genaiBuilder) init(name string, dims []int, data []float32) string {
	b.graph.Initializer = append(b.graph.Initializer, tensor(name, b.io, dims, data))
	return name
}

// matmul is the builder's make_matmul: MatMul NAME with weight
// NAME[1:]./→. + ".weight" ([in, out]). For int4 and int8 the builder's
// to_nbits pass (QuantizeMatMuls here) turns it into MatMulNBits afterwards.
func (b *genaiBuilder) matmul(name, x string, w []float32, in, out int, output string) string {
	if output == "" {
		output = name + "/output_0"
	}
	b.node(name, "MatMul", "", []string{x, b.init(dotted(name)+".weight", []int{in, out}, w)}, []string{output})
	return output
}

// dotted is the builder's initializer name for a node: name[1:] with / → .
func dotted(name string) string {
	out := []byte(name[1:])
	for i, c := range out {
		if c == '/' {
			out[i] = '.'
		}
	}
	return string(out)
}

// BuildGenAI returns the model and the genai_config.json the builder writes beside it.
func BuildGenAI(g GenAIConfig) (*pb.ModelProto, []byte, error) {
	g = g.defaults()
	if err := g.validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	b := &genaiBuilder{g: g, io: pb.TensorProto_FLOAT, graph: &pb.GraphProto{Name: proto.String("main_graph")}, consts: map[string]bool{}}
	if g.Precision == GenAIFP16 {
		b.io = pb.TensorProto_FLOAT16
	}
	hd := g.Hidden / g.Heads
	qSize, kvSize := g.Heads*hd, g.KVHeads*hd
	seed := g.Seed

	// make_inputs_and_outputs: input_ids, attention_mask, every past key,
	// then every past value; logits, every present key, every present value.
	gr := b.graph
	gr.Input = append(gr.Input, onnx.TensorInfo("input_ids", tInt64, dimBatch, dimSeq),
		onnx.TensorInfo("attention_mask", tInt64, dimBatch, dimTotal))
	gr.Output = append(gr.Output, onnx.TensorInfo("logits", b.io, dimBatch, dimSeq, g.Vocab))
	for _, kv := range []string{"key", "value"} {
		for i := 0; i < g.Layers; i++ {
			gr.Input = append(gr.Input, onnx.TensorInfo(fmt.Sprintf("past_key_values.%d.%s", i, kv), b.io, dimBatch, g.KVHeads, dimPast, "kv_cache_dim"))
			gr.Output = append(gr.Output, onnx.TensorInfo(fmt.Sprintf("present.%d.%s", i, kv), b.io, dimBatch, g.KVHeads, dimTotal, "kv_cache_dim"))
		}
	}

	// make_attention_mask_reformatting_for_gqa: seqlens_k = ReduceSum(mask) − 1
	// as int32, total_sequence_length = Shape(mask)[1] as int32.
	const mr = "/model/attn_mask_reformat/attn_mask_subgraph"
	s := b.op(mr+"/ReduceSum", "ReduceSum", []string{"attention_mask", "/model/constants/INT64/[1]"}, onnx.AttrInt("keepdims", 0))
	s = b.op(mr+"/Sub", "Sub", []string{s, "/model/constants/INT64/[1]"})
	seqlensK := b.op(mr+"/Sub/Cast", "Cast", []string{s}, onnx.AttrInt("to", int64(pb.TensorProto_INT32)))
	t := b.op(mr+"/Shape", "Shape", []string{"attention_mask"})
	t = b.op(mr+"/Gather", "Gather", []string{t, "/model/constants/INT64/1"}, onnx.AttrInt("axis", 0))
	totalLen := b.op(mr+"/Gather/Cast", "Cast", []string{t}, onnx.AttrInt("to", int64(pb.TensorProto_INT32)))

	// make_embedding.
	const embKey = "model.embed_tokens.weight"
	h := b.op("/model/embed_tokens/Gather", "Gather",
		[]string{b.init(embKey, []int{g.Vocab, g.Hidden}, normals(seed, embKey, g.Vocab*g.Hidden, 0, embStd)), "input_ids"})
	root, skip := h, h

	eps := onnx.AttrFloat("epsilon", rmsEps)
	norm := func(key string) []float32 { return normals(seed, key, g.Hidden, 1, normStd) }
	// make_layernorm: SkipSimplifiedLayerNormalization(root, skip, weight) →
	// output_0, and output_3 (root + skip, the residual) as the next root.
	skipNorm := func(scope, key string) string {
		outs := []string{scope + "/output_0", "", "", scope + "/output_3"}
		b.node(scope+"/SkipLayerNorm", "SkipSimplifiedLayerNormalization", "com.microsoft",
			[]string{root, skip, b.init(key, []int{g.Hidden}, norm(key))}, outs, eps)
		root = outs[3]
		return outs[0]
	}
	cosSin := false
	for i := 0; i < g.Layers; i++ {
		l := fmt.Sprintf("/model/layers.%d", i)
		key := fmt.Sprintf("model.layers.%d", i)
		var x string
		if i == 0 {
			k := key + ".input_layernorm.weight"
			x = l + "/input_layernorm/output_0"
			b.node(l+"/input_layernorm/LayerNorm", "SimplifiedLayerNormalization", "",
				[]string{root, b.init(k, []int{g.Hidden}, norm(k))}, []string{x}, eps, onnx.AttrInt("axis", -1), onnx.AttrInt("stash_type", 1))
		} else {
			x = skipNorm(l+"/input_layernorm", key+".input_layernorm.weight")
		}

		// make_attention_input_proj: one packed q/k/v MatMul, [H, q+k+v].
		wq := normals(seed, key+".self_attn.q_proj.weight", g.Hidden*qSize, 0, projStd(g.Hidden))
		wk := normals(seed, key+".self_attn.k_proj.weight", g.Hidden*kvSize, 0, projStd(g.Hidden))
		wv := normals(seed, key+".self_attn.v_proj.weight", g.Hidden*kvSize, 0, projStd(g.Hidden))
		n := qSize + 2*kvSize
		packed := make([]float32, 0, g.Hidden*n)
		for r := 0; r < g.Hidden; r++ {
			packed = append(packed, wq[r*qSize:(r+1)*qSize]...)
			packed = append(packed, wk[r*kvSize:(r+1)*kvSize]...)
			packed = append(packed, wv[r*kvSize:(r+1)*kvSize]...)
		}
		qkv := b.matmul(l+"/attn/qkv_proj/MatMul", x, packed, g.Hidden, n, "")
		// make_rotary_embedding_caches: created once, on the first attention.
		if !cosSin {
			cosSin = true
			c, s := ropeCaches(g.MaxPos, hd)
			b.init("cos_cache", []int{g.MaxPos, hd / 2}, c)
			b.init("sin_cache", []int{g.MaxPos, hd / 2}, s)
		}
		attn := l + "/attn/GroupQueryAttention"
		b.node(attn, "GroupQueryAttention", "com.microsoft",
			[]string{qkv, "", "", fmt.Sprintf("past_key_values.%d.key", i), fmt.Sprintf("past_key_values.%d.value", i),
				seqlensK, totalLen, "cos_cache", "sin_cache", "", "", ""},
			[]string{attn + "/output_0", fmt.Sprintf("present.%d.key", i), fmt.Sprintf("present.%d.value", i)},
			onnx.AttrInt("num_heads", int64(g.Heads)), onnx.AttrInt("kv_num_heads", int64(g.KVHeads)),
			onnx.AttrFloat("scale", float32(1/math.Sqrt(float64(hd)))), onnx.AttrInt("local_window_size", -1),
			onnx.AttrFloat("softcap", 0), onnx.AttrInt("do_rotary", 1), onnx.AttrInt("rotary_interleaved", 0))
		wo := normals(seed, key+".self_attn.o_proj.weight", qSize*g.Hidden, 0, residStd(qSize))
		skip = b.matmul(l+"/attn/o_proj/MatMul", attn+"/output_0", wo, qSize, g.Hidden, "")
		x = skipNorm(l+"/post_attention_layernorm", key+".post_attention_layernorm.weight")

		// make_mlp_proj: gate, up, act_fn (Sigmoid, Mul), Mul, down.
		wg := normals(seed, key+".mlp.gate_proj.weight", g.Hidden*g.FFN, 0, projStd(g.Hidden))
		gate := b.matmul(l+"/mlp/gate_proj/MatMul", x, wg, g.Hidden, g.FFN, "")
		wu := normals(seed, key+".mlp.up_proj.weight", g.Hidden*g.FFN, 0, projStd(g.Hidden))
		up := b.matmul(l+"/mlp/up_proj/MatMul", x, wu, g.Hidden, g.FFN, "")
		sig := b.op(l+"/mlp/act_fn/Sigmoid", "Sigmoid", []string{gate})
		act := b.op(l+"/mlp/act_fn/Mul", "Mul", []string{gate, sig})
		m := b.op(l+"/mlp/Mul", "Mul", []string{act, up})
		wd := normals(seed, key+".mlp.down_proj.weight", g.FFN*g.Hidden, 0, residStd(g.FFN))
		skip = b.matmul(l+"/mlp/down_proj/MatMul", m, wd, g.FFN, g.Hidden, "")
	}
	// The final norm is layer N's "final_norm" SkipSimplifiedLayerNormalization
	// with output 0 only; it carries model.norm.weight's values.
	scope := fmt.Sprintf("/model/layers.%d/final_norm_layernorm", g.Layers)
	b.node(scope+"/SkipLayerNorm", "SkipSimplifiedLayerNormalization", "com.microsoft",
		[]string{root, skip, b.init(fmt.Sprintf("model.layers.%d.final_norm_layernorm.weight", g.Layers), []int{g.Hidden}, norm("model.norm.weight"))},
		[]string{scope + "/output_0"}, eps)
	wl := normals(seed, "lm_head.weight", g.Hidden*g.Vocab, 0, projStd(g.Hidden))
	b.matmul("/lm_head/MatMul", scope+"/output_0", wl, g.Hidden, g.Vocab, "logits")

	model := &pb.ModelProto{
		IrVersion:    proto.Int64(irVersion(g.Opset)),
		ProducerName: proto.String("onnxruntime-genai"),
		OpsetImport: []*pb.OperatorSetIdProto{
			{Domain: proto.String(""), Version: proto.Int64(int64(g.Opset))},
			{Domain: proto.String("com.microsoft"), Version: proto.Int64(1)},
		},
		Graph: gr,
	}
	if bits := g.bits(); bits != 0 {
		// to_nbits: onnxruntime's MatMulNBitsQuantizer over the float model.
		if _, err := QuantizeMatMuls(model, bits, g.BlockSize, g.Asymmetric, g.AccuracyLevel); err != nil {
			return nil, nil, err
		}
	}
	cfg, err := g.genaiConfigJSON()
	if err != nil {
		return nil, nil, err
	}
	return model, cfg, nil
}

// ropeCaches returns cos_cache and sin_cache [maxPos, hd/2]: the first half of
// the HF tables (cat(freqs, freqs)), which is what the builder keeps.
func ropeCaches(maxPos, hd int) (cos, sin []float32) {
	half := hd / 2
	cos, sin = make([]float32, maxPos*half), make([]float32, maxPos*half)
	for p := 0; p < maxPos; p++ {
		for j := 0; j < half; j++ {
			inv := float32(1 / math.Pow(10000, float64(2*j)/float64(hd)))
			a := float64(float32(p) * inv)
			cos[p*half+j], sin[p*half+j] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return cos, sin
}

// pyFloat marshals like Python's json: 1.0, 0.0.
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	s := strconv.FormatFloat(float64(f), 'g', -1, 64)
	if !bytes.ContainsAny([]byte(s), ".eE") {
		s += ".0"
	}
	return []byte(s), nil
}

type jsonKV = struct {
	K string
	V any
}

// ordered is a JSON object that keeps its key order (Python dicts do).
type ordered []jsonKV

func (o ordered) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(e.K)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.V)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// Token ids of the genai config (the byte-level test vocabulary has none; the
// builder falls back to bos 1 and pad = eos).
const (
	genaiBOS = 1
	genaiEOS = 2
)

// genaiConfigJSON is make_genai_config's output for this model (json.dump,
// indent 4): on the CPU provider, or on CUDA for the fp16 model (the provider
// the builder makes an fp16 GroupQueryAttention model for), which lists its
// provider options.
func (g GenAIConfig) genaiConfigJSON() ([]byte, error) {
	hd := g.Hidden / g.Heads
	providers := []any{}
	if g.Precision == GenAIFP16 {
		providers = append(providers, ordered{{"cuda", ordered{{"enable_cuda_graph", "0"}}}})
	}
	cfg := ordered{
		{"model", ordered{
			{"bos_token_id", genaiBOS},
			{"context_length", g.MaxPos},
			{"decoder", ordered{
				{"session_options", ordered{{"log_id", "onnxruntime-genai"}, {"provider_options", providers}}},
				{"filename", "model.onnx"},
				{"head_size", hd},
				{"hidden_size", g.Hidden},
				{"inputs", ordered{{"input_ids", "input_ids"}, {"attention_mask", "attention_mask"},
					{"past_key_names", "past_key_values.%d.key"}, {"past_value_names", "past_key_values.%d.value"}}},
				{"outputs", ordered{{"logits", "logits"}, {"present_key_names", "present.%d.key"}, {"present_value_names", "present.%d.value"}}},
				{"num_attention_heads", g.Heads},
				{"num_hidden_layers", g.Layers},
				{"num_key_value_heads", g.KVHeads},
			}},
			{"eos_token_id", genaiEOS},
			{"pad_token_id", genaiEOS},
			{"type", "llama"},
			{"vocab_size", g.Vocab},
		}},
		{"search", ordered{
			{"diversity_penalty", pyFloat(0)},
			{"do_sample", false},
			{"early_stopping", true},
			{"length_penalty", pyFloat(1)},
			{"max_length", g.MaxPos},
			{"min_length", 0},
			{"no_repeat_ngram_size", 0},
			{"num_beams", 1},
			{"num_return_sequences", 1},
			{"past_present_share_buffer", true},
			{"repetition_penalty", pyFloat(1)},
			{"temperature", pyFloat(1)},
			{"top_k", 50},
			{"top_p", pyFloat(1)},
		}},
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("modelgen: genai_config.json: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "    "); err != nil {
		return nil, fmt.Errorf("modelgen: genai_config.json: %w", err)
	}
	return out.Bytes(), nil
}

// WriteGenAI writes the model as dir/model.onnx (weights inline) and
// genai_config.json beside it, as the builder lays out its output folder.
func WriteGenAI(dir string, g GenAIConfig) error {
	m, cfg, err := BuildGenAI(g)
	if err != nil {
		return err
	}
	if err := onnx.Save(m, filepath.Join(dir, "model.onnx"), onnx.SaveOptions{External: onnx.ExternalNever}); err != nil {
		return fmt.Errorf("modelgen: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "genai_config.json"), cfg, 0o644); err != nil {
		return fmt.Errorf("modelgen: %w", err)
	}
	return nil
}

// Float32IO returns a copy of m whose float16 graph inputs and outputs are
// float32, converted by Casts at the edges, so that the judge (which reads
// and writes float32 .npy files) can run an fp16 model. Every node of m is
// kept as is.
func Float32IO(m *pb.ModelProto) *pb.ModelProto {
	m = proto.Clone(m).(*pb.ModelProto)
	g := m.Graph
	f16 := int32(pb.TensorProto_FLOAT16)
	rename := map[string]string{}
	var head []*pb.NodeProto
	for _, in := range g.Input {
		tt := in.GetType().GetTensorType()
		if tt.GetElemType() != f16 {
			continue
		}
		inner := in.GetName() + "/float16"
		rename[in.GetName()] = inner
		tt.ElemType = proto.Int32(int32(pb.TensorProto_FLOAT))
		head = append(head, &pb.NodeProto{Name: proto.String(inner + "/Cast"), OpType: proto.String("Cast"),
			Input: []string{in.GetName()}, Output: []string{inner}, Attribute: []*pb.AttributeProto{onnx.AttrInt("to", int64(pb.TensorProto_FLOAT16))}})
	}
	for _, n := range g.Node {
		for i, in := range n.Input {
			if r, ok := rename[in]; ok {
				n.Input[i] = r
			}
		}
	}
	g.Node = append(head, g.Node...)
	for _, out := range g.Output {
		tt := out.GetType().GetTensorType()
		if tt.GetElemType() != f16 {
			continue
		}
		inner := out.GetName() + "/float16"
		for _, n := range g.Node {
			for i, o := range n.Output {
				if o == out.GetName() {
					n.Output[i] = inner
				}
			}
		}
		tt.ElemType = proto.Int32(int32(pb.TensorProto_FLOAT))
		g.Node = append(g.Node, &pb.NodeProto{Name: proto.String(inner + "/Cast"), OpType: proto.String("Cast"),
			Input: []string{inner}, Output: []string{out.GetName()}, Attribute: []*pb.AttributeProto{onnx.AttrInt("to", int64(pb.TensorProto_FLOAT))}})
	}
	return m
}
