package modelgen

import (
	"fmt"
	"math"
	"slices"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// BuildDynamo returns a torch.onnx.export(dynamo=True) model of a Llama
// decoder with a KV cache (or, with Functions, torch.onnx.dynamo_export's).
func BuildDynamo(d DynamoConfig) (*pb.ModelProto, error) {
	d = d.defaults()
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	g := &pb.GraphProto{Name: proto.String("main_graph")}
	b := &dynBuilder{d: d, g: g, nodes: &g.Node, fxN: map[string]int{}, consts: map[string]string{}, noMeta: d.Functions}
	hd := d.Hidden / d.Heads

	g.Input = append(g.Input, onnx.TensorInfo("input_ids", tInt64, dimBatch, dimSeq),
		onnx.TensorInfo("attention_mask", tInt64, dimBatch, dimTotal))
	g.Output = append(g.Output, onnx.TensorInfo("logits", tFloat, dimBatch, dimSeq, d.Vocab))
	for i := 0; i < d.Layers; i++ {
		for _, s := range []string{"key", "value"} {
			g.Input = append(g.Input, onnx.TensorInfo(fmt.Sprintf("past_key_values.%d.%s", i, s), tFloat, dimBatch, d.KVHeads, dimPast, hd))
			g.Output = append(g.Output, onnx.TensorInfo(fmt.Sprintf("present.%d.%s", i, s), tFloat, dimBatch, d.KVHeads, dimTotal, hd))
		}
	}

	b.push("", clsCausalLM)
	b.push("model", clsModel)
	b.push("model.embed_tokens", clsEmbed)
	const embKey = "model.embed_tokens.weight"
	emb := b.init(embKey, []int{d.Vocab, d.Hidden}, normals(d.Seed, embKey, d.Vocab*d.Hidden, 0, embStd))
	h := b.aten("embedding", "aten.embedding.default", "", func() string { return b.op("Gather", []string{emb, "input_ids"}) })
	b.pop()

	// Positions from the mask (what the twin computes), the bool attention
	// mask [B, 1, S, T] (causal and padding), rotary cos/sin [B, S, hd].
	seq := b.aten("sym_size_int", "aten.sym_size.int", "", func() string { return b.shapeOf("input_ids", 1, 2) })
	past := b.aten("sym_size_int", "aten.sym_size.int", "", func() string { return b.shapeOf("past_key_values.0.key", 2, 3) })
	total := b.aten("add", "aten.add.Tensor", "", func() string { return b.op("Add", []string{past, seq}) })
	cs := b.aten("cumsum", "aten.cumsum.default", "", func() string { return b.op("CumSum", []string{"attention_mask", b.i64(1)}) })
	sub := b.aten("sub", "aten.sub.Tensor", "", func() string { return b.op("Sub", []string{cs, b.i64(1)}) })
	eq := b.aten("eq", "aten.eq.Scalar", "", func() string { return b.op("Equal", []string{"attention_mask", b.i64(0)}) })
	filled := b.aten("masked_fill", "aten.masked_fill.Scalar", "", func() string { return b.op("Where", []string{eq, b.i64(1), sub}) })
	pos := b.aten("slice", "aten.slice.Tensor", "", func() string {
		return b.op("Slice", []string{filled, b.op("Neg", []string{seq}), b.i64s(math.MaxInt64), b.i64s(1), b.i64s(1)})
	})
	scalar := func(x string) string { return b.op("Squeeze", []string{x, b.i64s(0)}) }
	qpos := b.aten("arange", "aten.arange.start", "", func() string {
		return b.op("Range", []string{scalar(past), scalar(total), b.i64(1)})
	})
	qpos = b.aten("unsqueeze", "aten.unsqueeze.default", "", func() string { return b.op("Unsqueeze", []string{qpos, b.i64s(1)}) })
	kpos := b.aten("arange", "aten.arange.start", "", func() string {
		return b.op("Range", []string{b.i64(0), scalar(total), b.i64(1)})
	})
	causal := b.aten("le", "aten.le.Tensor", "", func() string { return b.op("LessOrEqual", []string{kpos, qpos}) })
	pad := b.aten("_to_copy", "aten._to_copy.default", "", func() string {
		return b.op("Cast", []string{"attention_mask"}, onnx.AttrInt("to", int64(pb.TensorProto_BOOL)))
	})
	pad = b.aten("unsqueeze", "aten.unsqueeze.default", "", func() string { return b.op("Unsqueeze", []string{pad, b.i64s(1, 2)}) })
	mask := b.aten("bitwise_and", "aten.bitwise_and.Tensor", "", func() string { return b.op("And", []string{causal, pad}) })

	b.push("model.rotary_emb", clsRotary)
	inv := make([]float32, hd/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(10000, float64(2*i)/float64(hd)))
	}
	// inv_freq[None, :, None] folded by the optimizer into [1, hd/2, 1].
	invExp := b.constant(tensorF32("", []int{1, hd / 2, 1}, inv))
	batch := b.shapeOf("input_ids", 0, 1)
	invExp = b.aten("expand", "aten.expand.default", "", func() string {
		return b.op("Expand", []string{invExp, b.op("Abs", []string{b.op("Concat", []string{batch, b.i64s(-1, 1)}, onnx.AttrInt("axis", 0))})})
	})
	pf := b.aten("_to_copy", "aten._to_copy.default", "", func() string {
		return b.op("Cast", []string{b.op("Unsqueeze", []string{pos, b.i64s(1)})}, onnx.AttrInt("to", int64(tFloat)))
	})
	fr := b.aten("matmul", "aten.matmul.default", "", func() string { return b.op("MatMul", []string{invExp, pf}) })
	fr = b.aten("transpose", "aten.transpose.int", "", func() string { return b.op("Transpose", []string{fr}, onnx.AttrInts("perm", 0, 2, 1)) })
	embr := b.aten("cat", "aten.cat.default", "", func() string { return b.op("Concat", []string{fr, fr}, onnx.AttrInt("axis", -1)) })
	cos := b.aten("cos", "aten.cos.default", "", func() string { return b.op("Cos", []string{embr}) })
	sin := b.aten("sin", "aten.sin.default", "", func() string { return b.op("Sin", []string{embr}) })
	b.pop()

	var fb *funcBuilder
	if d.Functions {
		fb = &funcBuilder{b: b, model: dynamoModuleDomain}
	}
	for i := 0; i < d.Layers; i++ {
		in := layerIn{h: h, cos: cos, sin: sin, mask: mask, past: [2]string{fmt.Sprintf("past_key_values.%d.key", i), fmt.Sprintf("past_key_values.%d.value", i)},
			present: [2]string{fmt.Sprintf("present.%d.key", i), fmt.Sprintf("present.%d.value", i)}}
		if fb != nil {
			h = fb.layer(i, in)
		} else {
			h = b.layer(i, in)
		}
	}
	h = b.rmsNorm("model.norm", "model.norm.weight", h)
	b.pop()
	b.push("lm_head", clsLinear)
	w := b.val()
	g.Initializer = append(g.Initializer, tensorF32(w, []int{d.Hidden, d.Vocab}, normals(d.Seed, "lm_head.weight", d.Hidden*d.Vocab, 0, projStd(d.Hidden))))
	b.aten("linear", "aten.linear.default", "logits", func() string { return b.op("MatMul", []string{h, w}) })

	m := &pb.ModelProto{
		IrVersion:       proto.Int64(10),
		ProducerName:    proto.String("pytorch"),
		ProducerVersion: proto.String("2.9.0"),
		OpsetImport:     []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(int64(d.Opset))}},
		Graph:           g,
	}
	if fb != nil {
		m.IrVersion = proto.Int64(8)
		m.ProducerVersion = proto.String("2.3.1")
		m.Functions = fb.funcs
		for _, dom := range []string{dynamoModuleDomain, dynamoTorchlibDomain} {
			m.OpsetImport = append(m.OpsetImport, &pb.OperatorSetIdProto{Domain: proto.String(dom), Version: proto.Int64(1)})
		}
	}
	return m, nil
}

type layerIn struct {
	h, cos, sin, mask string
	past, present     [2]string
}

// layer emits LlamaDecoderLayer i (scope model.layers.i) and returns its output.
func (b *dynBuilder) layer(i int, in layerIn) string {
	d := b.d
	key := fmt.Sprintf("model.layers.%d", i)
	b.push(key, clsLayer)
	defer b.pop()
	x := b.rmsNorm(key+".input_layernorm", key+".input_layernorm.weight", in.h)
	o := b.attention(key+".self_attn", x, in)
	h := b.aten("add", "aten.add.Tensor", "", func() string { return b.op("Add", []string{in.h, o}) })
	x = b.rmsNorm(key+".post_attention_layernorm", key+".post_attention_layernorm.weight", h)
	b.push(key+".mlp", clsMLP)
	gate := b.linear(key+".mlp.gate_proj", key+".mlp.gate_proj", x, d.Hidden, d.FFN, projStd(d.Hidden))
	b.push(key+".mlp.act_fn", clsSiLU)
	act := b.aten("silu", "aten.silu.default", "", func() string {
		return b.op("Mul", []string{gate, b.op("Sigmoid", []string{gate})})
	})
	b.pop()
	up := b.linear(key+".mlp.up_proj", key+".mlp.up_proj", x, d.Hidden, d.FFN, projStd(d.Hidden))
	m := b.aten("mul", "aten.mul.Tensor", "", func() string { return b.op("Mul", []string{act, up}) })
	m = b.linear(key+".mlp.down_proj", key+".mlp.down_proj", m, d.FFN, d.Hidden, residStd(d.FFN))
	b.pop()
	return b.aten("add", "aten.add.Tensor", "", func() string { return b.op("Add", []string{h, m}) })
}

// attention is LlamaAttention with the sdpa implementation: q/k/v, view,
// transpose, rotary (rotate_half by slices), the cache concat, repeat_kv,
// then torchlib's scaled_dot_product_attention lowering (bool mask) at
// opset 18 or ONNX Attention at 23, transpose, reshape, o_proj.
func (b *dynBuilder) attention(scope, x string, in layerIn) string {
	d := b.d
	hd := d.Hidden / d.Heads
	b.push(scope, clsAttn)
	defer b.pop()
	lead := b.shapeOf(x, 0, 2)
	heads := func(proj string) string {
		v := b.aten("view", "aten.view.default", "", func() string {
			return b.op("Reshape", []string{proj, b.op("Concat", []string{lead, b.i64s(-1, int64(hd))}, onnx.AttrInt("axis", 0))}, onnx.AttrInt("allowzero", 0))
		})
		return b.aten("transpose", "aten.transpose.int", "", func() string {
			return b.op("Transpose", []string{v}, onnx.AttrInts("perm", 0, 2, 1, 3))
		})
	}
	q := heads(b.linear(scope+".q_proj", scope+".q_proj", x, d.Hidden, d.Heads*hd, projStd(d.Hidden)))
	k := heads(b.linear(scope+".k_proj", scope+".k_proj", x, d.Hidden, d.KVHeads*hd, projStd(d.Hidden)))
	v := heads(b.linear(scope+".v_proj", scope+".v_proj", x, d.Hidden, d.KVHeads*hd, projStd(d.Hidden)))
	cos := b.aten("unsqueeze", "aten.unsqueeze.default", "", func() string { return b.op("Unsqueeze", []string{in.cos, b.i64s(1)}) })
	sin := b.aten("unsqueeze", "aten.unsqueeze.default", "", func() string { return b.op("Unsqueeze", []string{in.sin, b.i64s(1)}) })
	rope := func(t string) string {
		tc := b.aten("mul", "aten.mul.Tensor", "", func() string { return b.op("Mul", []string{t, cos}) })
		x1 := b.aten("slice", "aten.slice.Tensor", "", func() string {
			return b.op("Slice", []string{t, b.i64s(0), b.i64s(int64(hd / 2)), b.i64s(3), b.i64s(1)})
		})
		x2 := b.aten("slice", "aten.slice.Tensor", "", func() string {
			return b.op("Slice", []string{t, b.i64s(int64(hd / 2)), b.i64s(math.MaxInt64), b.i64s(3), b.i64s(1)})
		})
		n := b.aten("neg", "aten.neg.default", "", func() string { return b.op("Neg", []string{x2}) })
		r := b.aten("cat", "aten.cat.default", "", func() string { return b.op("Concat", []string{n, x1}, onnx.AttrInt("axis", -1)) })
		rs := b.aten("mul", "aten.mul.Tensor", "", func() string { return b.op("Mul", []string{r, sin}) })
		return b.aten("add", "aten.add.Tensor", "", func() string { return b.op("Add", []string{tc, rs}) })
	}
	q, k = rope(q), rope(k)
	k = b.aten("cat", "aten.cat.default", in.present[0], func() string {
		return b.op("Concat", []string{in.past[0], k}, onnx.AttrInt("axis", -2))
	})
	v = b.aten("cat", "aten.cat.default", in.present[1], func() string {
		return b.op("Concat", []string{in.past[1], v}, onnx.AttrInt("axis", -2))
	})
	if rep := d.Heads / d.KVHeads; rep > 1 {
		k, v = b.repeatKV(k, rep), b.repeatKV(v, rep)
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	var o string
	if d.Opset >= 23 {
		o = b.aten("scaled_dot_product_attention", "aten.scaled_dot_product_attention.default", "", func() string {
			return b.op("Attention", []string{q, k, v, in.mask}, onnx.AttrFloat("scale", scale))
		})
	} else {
		o = b.aten("scaled_dot_product_attention", "aten.scaled_dot_product_attention.default", "", func() string {
			return b.sdpa(q, k, v, in.mask, scale)
		})
	}
	o = b.aten("transpose", "aten.transpose.int", "", func() string { return b.op("Transpose", []string{o}, onnx.AttrInts("perm", 0, 2, 1, 3)) })
	o = b.aten("reshape", "aten.reshape.default", "", func() string {
		return b.op("Reshape", []string{o, b.op("Concat", []string{lead, b.i64s(-1)}, onnx.AttrInt("axis", 0))}, onnx.AttrInt("allowzero", 0))
	})
	return b.linear(scope+".o_proj", scope+".o_proj", o, d.Heads*hd, d.Hidden, residStd(d.Heads*hd))
}

// repeatKV is Hugging Face's repeat_kv: x[:, :, None] expanded to rep
// copies, reshaped to [B, kv·rep, T, hd].
func (b *dynBuilder) repeatKV(x string, rep int) string {
	d := b.d
	hd := d.Hidden / d.Heads
	u := b.aten("unsqueeze", "aten.unsqueeze.default", "", func() string { return b.op("Unsqueeze", []string{x, b.i64s(2)}) })
	bs, t := b.shapeOf(x, 0, 1), b.shapeOf(x, 2, 3)
	e := b.aten("expand", "aten.expand.default", "", func() string {
		shape := b.op("Concat", []string{bs, b.i64s(int64(d.KVHeads), int64(rep)), t, b.i64s(int64(hd))}, onnx.AttrInt("axis", 0))
		return b.op("Expand", []string{u, b.op("Abs", []string{shape})})
	})
	return b.aten("reshape", "aten.reshape.default", "", func() string {
		shape := b.op("Concat", []string{bs, b.i64s(int64(d.KVHeads * rep)), t, b.i64s(int64(hd))}, onnx.AttrInt("axis", 0))
		return b.op("Reshape", []string{e, shape}, onnx.AttrInt("allowzero", 0))
	})
}

// sdpa is torchlib's _aten_scaled_dot_product_attention_bool_mask_onnx with
// the constants folded: key transposed through a 3-D Reshape, q and k each
// scaled by √scale, the mask turned to 0 / float min, Softmax, NaN rows
// zeroed, times V.
func (b *dynBuilder) sdpa(q, k, v, mask string, scale float32) string {
	ks := b.op("Shape", []string{k})
	last := b.op("Slice", []string{ks, b.i64s(-1), b.i64s(math.MaxInt64)})
	second := b.op("Slice", []string{ks, b.i64s(-2), b.i64s(-1)})
	first := b.op("Slice", []string{ks, b.i64s(math.MinInt64), b.i64s(-2)})
	k3 := b.op("Reshape", []string{k, b.op("Concat", []string{b.i64s(-1), second, last}, onnx.AttrInt("axis", 0))})
	kt := b.op("Transpose", []string{k3}, onnx.AttrInts("perm", 0, 2, 1))
	kt = b.op("Reshape", []string{kt, b.op("Concat", []string{first, last, second}, onnx.AttrInt("axis", 0))})
	sq := b.f32(float32(math.Sqrt(float64(scale))))
	qs := b.op("Mul", []string{q, sq})
	kts := b.op("Mul", []string{kt, sq})
	zero := b.f32(0)
	m := b.op("Where", []string{mask, zero, b.f32(-math.MaxFloat32)})
	w := b.op("Softmax", []string{b.op("Add", []string{b.op("MatMul", []string{qs, kts}), m})}, onnx.AttrInt("axis", -1))
	w = b.op("Where", []string{b.op("IsNaN", []string{w}), zero, w})
	return b.op("MatMul", []string{w, v})
}

// funcBuilder writes each decoder layer as a model-local function (the
// modularization pass of dynamo_export): the main graph calls
// <domain>::<class>_model_layers_<i>_1 with the layer's inputs and weights;
// its softmax calls torchlib's aten_softmax_no_dtype, whose dim is an
// attribute referenced by the body.
type funcBuilder struct {
	b       *dynBuilder
	model   string
	funcs   []*pb.FunctionProto
	softmax bool
}

func (f *funcBuilder) layer(i int, in layerIn) string {
	b := f.b
	var body []*pb.NodeProto
	mainNodes := b.nodes
	b.nodes = &body
	out := b.layer(i, in)
	b.nodes = mainNodes
	// Softmax through the torchlib function, as the old exporter kept torchlib calls.
	for j, n := range body {
		if n.GetOpType() == "Softmax" {
			body[j] = &pb.NodeProto{Name: n.Name, OpType: proto.String("aten_softmax_no_dtype"), Domain: proto.String(dynamoTorchlibDomain),
				Input: n.Input, Output: n.Output, Attribute: []*pb.AttributeProto{onnx.AttrInt("dim", -1)}}
			f.torchlibSoftmax()
		}
	}
	// Inputs: every value the body reads and does not define (the layer's
	// inputs, its weights, shared constants), in first-use order.
	defined := map[string]bool{}
	var free []string
	for _, n := range body {
		for _, x := range n.Input {
			if x != "" && !defined[x] && !slices.Contains(free, x) {
				free = append(free, x)
			}
		}
		for _, o := range n.Output {
			defined[o] = true
		}
	}
	name := fmt.Sprintf("transformers_models_llama_modeling_llama_LlamaDecoderLayer_model_layers_%d_1", i)
	outs := []string{out, in.present[0], in.present[1]}
	f.funcs = append(f.funcs, &pb.FunctionProto{Name: proto.String(name), Domain: proto.String(f.model),
		Input: free, Output: outs, Node: body,
		OpsetImport: []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(18)},
			{Domain: proto.String(dynamoTorchlibDomain), Version: proto.Int64(1)}}})
	h := fmt.Sprintf("model_layers_%d_1", i)
	*b.nodes = append(*b.nodes, &pb.NodeProto{Name: proto.String(fmt.Sprintf("%s_%d", name, b.nodeN)), OpType: proto.String(name),
		Domain: proto.String(f.model), Input: free, Output: []string{h, in.present[0], in.present[1]}})
	b.nodeN++
	return h
}

func (f *funcBuilder) torchlibSoftmax() {
	if f.softmax {
		return
	}
	f.softmax = true
	ref := &pb.AttributeProto{Name: proto.String("axis"), RefAttrName: proto.String("dim"), Type: pb.AttributeProto_INT.Enum()}
	f.funcs = append(f.funcs, &pb.FunctionProto{Name: proto.String("aten_softmax_no_dtype"), Domain: proto.String(dynamoTorchlibDomain),
		Input: []string{"self"}, Output: []string{"result"}, Attribute: []string{"dim"},
		Node: []*pb.NodeProto{{Name: proto.String("n0"), OpType: proto.String("Softmax"), Input: []string{"self"}, Output: []string{"result"},
			Attribute: []*pb.AttributeProto{ref}}},
		OpsetImport: []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(18)}}})
}
