package modelgen

import (
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/internal/rowmajor"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// Weight scales (standard deviations). Projections reading the residual
// stream have 1/√fan_in, projections writing into it 0.5/√fan_in, so each
// layer moves the residual stream by a fraction of its size: neighbouring
// layers are similar but not equal, and merging two layers changes the logits.
const (
	embStd  = 1.0
	normStd = 0.1 // norm weights are 1 ± 0.1
	biasStd = 0.1
	rmsEps  = 1e-6
	lnEps   = 1e-5
)

func projStd(in int) float64  { return 1 / math.Sqrt(float64(in)) }
func residStd(in int) float64 { return 0.5 / math.Sqrt(float64(in)) }

const (
	tFloat = pb.TensorProto_FLOAT
	tInt64 = pb.TensorProto_INT64
)

// decoderIO holds the input values of a decoder graph.
type decoderIO struct {
	ids, mask, pos string
	past           [][2]string // per layer: key, value
}

// beginDecoder starts a decoder graph: it declares the inputs and outputs
// shared by the decoder architectures, then the Identity nodes of dedupNorms
// (normFormat names the input-norm weights), which torch puts first.
func (b *builder) beginDecoder(kvHeads, headDim int, normFormat string) decoderIO {
	c := b.cfg
	var io decoderIO
	io.ids = b.input("input_ids", tInt64, dimBatch, dimSeq)
	if c.AttentionMask {
		maskLen := dimSeq
		if c.KVCache && !c.NoPastInputs {
			maskLen = dimTotal
		}
		io.mask = b.input("attention_mask", tInt64, dimBatch, maskLen)
	}
	if c.PositionIDs {
		io.pos = b.input("position_ids", tInt64, dimBatch, dimSeq)
	}
	b.output("logits", tFloat, dimBatch, dimSeq, c.Vocab)
	if c.KVCache {
		for i := 0; i < c.Layers; i++ {
			var kv [2]string
			for j, s := range []string{"key", "value"} {
				if !c.NoPastInputs {
					kv[j] = b.input(fmt.Sprintf("past_key_values.%d.%s", i, s), tFloat, dimBatch, kvHeads, dimPast, headDim)
				}
				b.output(fmt.Sprintf("present.%d.%s", i, s), tFloat, dimBatch, kvHeads, dimTotal, headDim)
			}
			io.past = append(io.past, kv)
		}
	}
	b.dedupNorms(normFormat)
	return io
}

// dedupNorms emits, when the config asks for it, the Identity nodes through
// which layers 1.. read layer 0's input-norm weight.
func (b *builder) dedupNorms(format string) {
	if !b.cfg.DedupIdentity {
		return
	}
	for i := 1; i < b.cfg.Layers; i++ {
		b.g.Node = append(b.g.Node, &pb.NodeProto{
			Name: proto.String(fmt.Sprintf("Identity_%d", b.nextSerial())), OpType: proto.String("Identity"),
			Input: []string{fmt.Sprintf(format, 0)}, Output: []string{fmt.Sprintf(format, i)},
		})
	}
}

// normWeight returns the value of a norm weight (1 ± normStd). With
// DedupIdentity, layers 1.. read the output of their Identity node instead.
func (b *builder) normWeight(key, dedupFormat string, layer int) string {
	if b.cfg.DedupIdentity && layer > 0 && key == fmt.Sprintf(dedupFormat, layer) {
		return b.asFloat(key)
	}
	return b.initializer(key, []int{b.cfg.Hidden}, normals(b.cfg.Seed, key, b.cfg.Hidden, 1, normStd))
}

// positions returns position ids [batch or 1, seq] when the graph has no
// position_ids input.
func (b *builder) positions(mask, seq, pastLen string) string {
	if b.cfg.KVCache && mask != "" {
		// optimum: cumsum(mask) - 1, 1 where masked, the last seq columns.
		p := b.op("Sub", b.op("CumSum", mask, b.i64(1)), b.i64(1))
		p = b.op("Where", b.op("Equal", mask, b.i64(0)), b.i64(1), p)
		return b.slice(p, b.unsq0(b.op("Neg", seq)), b.i64s(math.MaxInt64), b.i64s(1), b.i64s(1))
	}
	return b.unsqueeze(b.op("Range", b.rangeFrom(pastLen, seq)...), 0)
}

// rangeFrom returns the Range inputs for positions past..past+seq-1 (past is
// empty without a KV cache).
func (b *builder) rangeFrom(pastLen, seq string) []string {
	if pastLen == "" {
		return []string{b.i64(0), seq, b.i64(1)}
	}
	return []string{pastLen, b.op("Add", pastLen, seq), b.i64(1)}
}

// attentionBias returns the additive mask [batch or 1, 1, seq, total]:
// 0 where query position past+p may attend key position j (j ≤ past+p and
// attention_mask[j] = 1), float32 min elsewhere.
func (b *builder) attentionBias(mask, seq, pastLen string) string {
	if mask == "" && pastLen == "" && b.cfg.Opset >= 14 {
		// torch.full((t, t), min).triu(1), as the torch 1.13 Llama export.
		full := b.opA("ConstantOfShape", []string{b.shape(b.unsq0(seq), b.unsq0(seq))},
			onnx.AttrTensor("value", tensorF32("", []int{1}, []float32{negInf})))
		m := b.opA("Trilu", []string{full, b.i64(1)}, onnx.AttrInt("upper", 1))
		return b.unsqueeze(b.unsqueeze(m, 0), 1)
	}
	// Hugging Face: causal part from positions, padding part from the mask.
	r := b.rangeFrom(pastLen, seq)
	qpos := b.unsqueeze(b.op("Range", r...), 1)
	kpos := b.op("Range", b.i64(0), r[1], b.i64(1))
	allowed := b.op("LessOrEqual", kpos, qpos) // [seq, total]
	if mask != "" {
		m := b.unsqueeze(b.opA("Cast", []string{mask}, onnx.AttrInt("to", int64(pb.TensorProto_BOOL))), 1, 2)
		allowed = b.op("And", allowed, m) // [batch, 1, seq, total]
	} else {
		allowed = b.unsqueeze(allowed, 0, 1)
	}
	return b.op("Where", allowed, b.f32(0), b.f32(negInf))
}

// rotary returns cos and sin [batch or 1, 1, seq, head_dim] for positions.
// Without a KV cache: tables sliced to seq and gathered by position (HF ≤ 4.35,
// the torch 1.13 export); with one: inv_freq @ positions, Cos, Sin (HF ≥ 4.38).
func (b *builder) rotary(positions, seq string) (cos, sin string) {
	c := b.cfg
	hd := c.Hidden / c.Heads
	b.push("rotary_emb")
	defer b.pop()
	inv := make([]float64, hd/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(10000, float64(2*i)/float64(hd))
	}
	if !c.KVCache {
		ct := make([]float32, c.MaxPos*hd)
		st := make([]float32, c.MaxPos*hd)
		for p := 0; p < c.MaxPos; p++ {
			for j := 0; j < hd; j++ {
				a := float64(float32(p) * float32(inv[j%(hd/2)]))
				ct[p*hd+j] = float32(math.Cos(a))
				st[p*hd+j] = float32(math.Sin(a))
			}
		}
		out := [2]string{}
		for i, t := range [][]float32{ct, st} {
			table := b.constant(tensorF32("", []int{c.MaxPos, hd}, t))
			rows := b.slice(table, b.i64s(0), b.unsqueeze(seq, 0), b.i64s(0), b.i64s(1))
			out[i] = b.unsqueeze(b.opA("Gather", []string{rows, positions}, onnx.AttrInt("axis", 0)), 1)
		}
		return out[0], out[1]
	}
	inv32 := make([]float32, len(inv))
	for i, v := range inv {
		inv32[i] = float32(v)
	}
	f := b.op("MatMul", b.constant(tensorF32("", []int{1, hd / 2, 1}, inv32)),
		b.opA("Cast", []string{b.unsqueeze(positions, 1)}, onnx.AttrInt("to", int64(tFloat))))
	f = b.transpose(f, 0, 2, 1)
	emb := b.opA("Concat", []string{f, f}, onnx.AttrInt("axis", -1))
	return b.unsqueeze(b.op("Cos", emb), 1), b.unsqueeze(b.op("Sin", emb), 1)
}

// applyRotary is x·cos + rotate_half(x)·sin, rotate_half(x) = cat(-x2, x1).
func (b *builder) applyRotary(x, cos, sin string) string {
	xc := b.op("Mul", x, cos)
	half := b.opA("Cast", []string{b.op("Div", b.dim(x, 3), b.i64(2))}, onnx.AttrInt("to", int64(tInt64)))
	x1 := b.slice(x, b.i64s(0), b.unsqueeze(half, 0), b.i64s(3), b.i64s(1))
	x2 := b.slice(x, b.unsqueeze(half, 0), b.i64s(math.MaxInt64), b.i64s(3), b.i64s(1))
	rot := b.opA("Concat", []string{b.op("Neg", x2), x1}, onnx.AttrInt("axis", -1))
	return b.op("Add", xc, b.op("Mul", rot, sin))
}

func (b *builder) reshape(x, shape string) string {
	if b.cfg.Opset >= 14 {
		return b.opA("Reshape", []string{x, shape}, onnx.AttrInt("allowzero", 0))
	}
	return b.op("Reshape", x, shape)
}

// rmsNorm is w · x / sqrt(mean(x²) + eps), decomposed as torch exports it.
func (b *builder) rmsNorm(scope, x, w string) string {
	b.push(scope)
	defer b.pop()
	m := b.reduceMean(b.op("Pow", x, b.f32(2)))
	s := b.op("Sqrt", b.op("Add", m, b.f32(rmsEps)))
	return b.op("Mul", w, b.op("Mul", x, b.op("Div", b.f32(1), s)))
}

// linear is x·W (+ bias) in scope, with W from weightMatrix.
func (b *builder) linear(scope, key, x string, in, out int, std float64, bias bool) string {
	b.push(scope)
	defer b.pop()
	y := b.op("MatMul", x, b.weightMatrix(key+".weight", in, out, std))
	if bias {
		bk := key + ".bias"
		y = b.op("Add", b.initializer(bk, []int{out}, normals(b.cfg.Seed, bk, out, 0, biasStd)), y)
	}
	return y
}

// attention describes one multi-head attention block in the current scope.
type attention struct {
	key      string // parameter prefix, e.g. "model.layers.0.self_attn"
	x, kv    string // query input and key/value input (equal for self-attention)
	cos, sin string // RoPE, none when empty
	bias     string // additive mask, none when empty
	past     [2]string
	present  [2]string // graph output names, with a KV cache
	qkvBias  bool
}

// llamaAttention emits q/k/v projections, head reshapes with torch's shape
// plumbing, RoPE, the KV cache concat, grouped-query repeat via
// Unsqueeze/Expand/Reshape (HF repeat_kv), softmax attention and o_proj.
func (b *builder) llamaAttention(a attention) string {
	c := b.cfg
	hd := c.Hidden / c.Heads
	bs, sl := b.dim(a.x, 0), b.dim(a.x, 1)
	kvs := sl
	if a.kv != a.x {
		kvs = b.dim(a.kv, 1)
	}
	q := b.linear("q_proj", a.key+".q_proj", a.x, c.Hidden, c.Heads*hd, projStd(c.Hidden), a.qkvBias)
	q = b.transpose(b.reshape(q, b.shape(b.unsq0(bs), b.unsq0(sl), c.Heads, hd)), 0, 2, 1, 3)
	k := b.linear("k_proj", a.key+".k_proj", a.kv, c.Hidden, c.KVHeads*hd, projStd(c.Hidden), a.qkvBias)
	k = b.transpose(b.reshape(k, b.shape(b.unsq0(bs), b.unsq0(kvs), c.KVHeads, hd)), 0, 2, 1, 3)
	v := b.linear("v_proj", a.key+".v_proj", a.kv, c.Hidden, c.KVHeads*hd, projStd(c.Hidden), a.qkvBias)
	v = b.transpose(b.reshape(v, b.shape(b.unsq0(bs), b.unsq0(kvs), c.KVHeads, hd)), 0, 2, 1, 3)
	if a.cos != "" {
		q = b.applyRotary(q, a.cos, a.sin)
		k = b.applyRotary(k, a.cos, a.sin)
	}
	if a.past[0] != "" {
		k = b.rename(b.opA("Concat", []string{a.past[0], k}, onnx.AttrInt("axis", 2)), a.present[0])
		v = b.rename(b.opA("Concat", []string{a.past[1], v}, onnx.AttrInt("axis", 2)), a.present[1])
	} else if a.present[0] != "" {
		// No past (NoPastInputs): the present is the new key and value, as
		// torch names a graph output after the value it returns.
		k = b.renameProduced(k, a.present[0])
		v = b.renameProduced(v, a.present[1])
	}
	if rep := c.Heads / c.KVHeads; rep > 1 {
		k = b.repeatKV(k, rep)
		v = b.repeatKV(v, rep)
	}
	s := b.op("MatMul", q, b.transpose(k, 0, 1, 3, 2))
	s = b.op("Div", s, b.f32(float32(math.Sqrt(float64(hd)))))
	if a.bias != "" {
		s = b.op("Add", s, a.bias)
	}
	p := b.opA("Softmax", []string{s}, onnx.AttrInt("axis", -1))
	o := b.transpose(b.op("MatMul", p, v), 0, 2, 1, 3)
	o = b.reshape(o, b.shape(b.unsq0(bs), b.unsq0(sl), c.Heads*hd))
	return b.linear("o_proj", a.key+".o_proj", o, c.Heads*hd, c.Hidden, residStd(c.Heads*hd), false)
}

// repeatKV repeats each key/value head rep times: [b, kvh, t, hd] →
// Unsqueeze → Expand [b, kvh, rep, t, hd] → Reshape [b, kvh·rep, t, hd].
func (b *builder) repeatKV(x string, rep int) string {
	c := b.cfg
	hd := c.Hidden / c.Heads
	bs, t := b.dim(x, 0), b.dim(x, 2)
	e := b.op("Expand", b.unsqueeze(x, 2), b.shape(b.unsq0(bs), c.KVHeads, rep, b.unsq0(t), hd))
	return b.reshape(e, b.shape(b.unsq0(bs), c.KVHeads*rep, b.unsq0(t), hd))
}

// swiGLU is down(silu(gate(x)) · up(x)).
func (b *builder) swiGLU(key, x string, ffn int) string {
	c := b.cfg
	g := b.linear("gate_proj", key+".gate_proj", x, c.Hidden, ffn, projStd(c.Hidden), false)
	g = b.op("Mul", g, b.op("Sigmoid", g))
	u := b.linear("up_proj", key+".up_proj", x, c.Hidden, ffn, projStd(c.Hidden), false)
	return b.linear("down_proj", key+".down_proj", b.op("Mul", g, u), ffn, c.Hidden, residStd(ffn), false)
}

// embedding adds the token embedding table [Vocab, Hidden] as initializer key
// and returns its value and its weights (lmHead's when they are tied).
func (b *builder) embedding(key string) (string, []float32) {
	c := b.cfg
	emb := normals(c.Seed, key, c.Vocab*c.Hidden, 0, embStd)
	return b.initializer(key, []int{c.Vocab, c.Hidden}, emb), emb
}

// lmHead is logits = x·W, W untied, or the (transposed) embedding when tied.
func (b *builder) lmHead(x, embValue string, emb []float32) {
	c := b.cfg
	b.push("lm_head")
	defer b.pop()
	var w string
	switch {
	case !c.TiedEmbeddings:
		w = b.weightMatrix("lm_head.weight", c.Hidden, c.Vocab, projStd(c.Hidden))
	case c.TransposedWeights:
		w = b.foldedWeight([]int{c.Hidden, c.Vocab}, rowmajor.Transpose(emb, c.Vocab, c.Hidden))
	default:
		w = b.transpose(embValue, 1, 0)
	}
	b.rename(b.op("MatMul", x, w), "logits")
}

const llamaNormFormat = "model.layers.%d.input_layernorm.weight"

func buildLlama(b *builder) {
	c := b.cfg
	hd := c.Hidden / c.Heads
	io := b.beginDecoder(c.KVHeads, hd, llamaNormFormat)

	b.push("model")
	seq := b.dim(io.ids, 1)
	pastLen := ""
	if c.KVCache && !c.NoPastInputs {
		pastLen = b.dim(io.past[0][0], 2)
	}
	pos := io.pos
	if pos == "" {
		pos = b.positions(io.mask, seq, pastLen)
	}
	b.push("embed_tokens")
	embValue, emb := b.embedding("model.embed_tokens.weight")
	h := b.op("Gather", embValue, io.ids)
	b.pop()
	if !c.TiedEmbeddings {
		emb = nil // not needed again: Stream holds one tensor at a time
	}
	cos, sin := b.rotary(pos, seq)
	bias := b.attentionBias(io.mask, seq, pastLen)

	for i := 0; i < c.Layers; i++ {
		key := fmt.Sprintf("model.layers.%d", i)
		b.push(fmt.Sprintf("layers.%d", i))
		b.push("input_layernorm")
		w := b.normWeight(key+".input_layernorm.weight", llamaNormFormat, i)
		b.pop()
		x := b.rmsNorm("input_layernorm", h, w)
		a := attention{key: key + ".self_attn", x: x, kv: x, cos: cos, sin: sin, bias: bias,
			qkvBias: c.Odd.Kind == OddBias && c.Odd.Layer == i}
		if c.KVCache {
			a.past = io.past[i]
			a.present = [2]string{fmt.Sprintf("present.%d.key", i), fmt.Sprintf("present.%d.value", i)}
		}
		b.push("self_attn")
		o := b.llamaAttention(a)
		b.pop()
		h = b.op("Add", h, o)
		b.push("post_attention_layernorm")
		w = b.normWeight(key+".post_attention_layernorm.weight", llamaNormFormat, i)
		b.pop()
		x = b.rmsNorm("post_attention_layernorm", h, w)
		ffn := c.FFN
		if c.Odd.Kind == OddFFN && c.Odd.Layer == i {
			ffn += c.FFN / 2
		}
		b.push("mlp")
		m := b.swiGLU(key+".mlp", x, ffn)
		b.pop()
		h = b.op("Add", h, m)
		b.pop()
	}
	b.push("norm")
	w := b.normWeight("model.norm.weight", llamaNormFormat, -1)
	b.pop()
	h = b.rmsNorm("norm", h, w)
	b.pop()
	b.lmHead(h, embValue, emb)
}
