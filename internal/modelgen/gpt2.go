package modelgen

import (
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// layerNorm is LayerNormalization (opset ≥ 17) or torch's decomposition of it.
func (b *builder) layerNorm(scope, key, x string, dedupFormat string, layer int) string {
	c := b.cfg
	b.push(scope)
	defer b.pop()
	w := b.normWeight(key+".weight", dedupFormat, layer)
	bk := key + ".bias"
	bias := b.initializer(bk, []int{c.Hidden}, normals(c.Seed, bk, c.Hidden, 0, biasStd))
	if c.Opset >= 17 {
		return b.opA("LayerNormalization", []string{x, w, bias}, onnx.AttrInt("axis", -1), onnx.AttrFloat("epsilon", lnEps))
	}
	d := b.op("Sub", x, b.reduceMean(x))
	v := b.reduceMean(b.op("Pow", d, b.f32(2)))
	n := b.op("Div", d, b.op("Sqrt", b.op("Add", v, b.f32(lnEps))))
	return b.op("Add", b.op("Mul", n, w), bias)
}

// conv1d is GPT-2's Conv1D as torch exports it: x.view(-1, in) → Gemm with the
// [in, out] weight and the bias → view(batch, seq, out), with shape plumbing.
func (b *builder) conv1d(scope, key, x string, in, out int, std float64, bias bool) string {
	c := b.cfg
	b.push(scope)
	defer b.pop()
	bs, sl := b.dim(x, 0), b.dim(x, 1)
	last := b.slice(b.op("Shape", x), b.i64s(-1), b.i64s(math.MaxInt64), b.i64s(0), "")
	x2 := b.reshape(x, b.shape(-1, b.unsq0(b.op("Squeeze", last, b.i64s(0)))))
	wk := key + ".weight"
	ins := []string{x2, b.initializer(wk, []int{in, out}, normals(c.Seed, wk, in*out, 0, std))}
	if bias {
		bk := key + ".bias"
		ins = append(ins, b.initializer(bk, []int{out}, normals(c.Seed, bk, out, 0, biasStd)))
	}
	y := b.opA("Gemm", ins, onnx.AttrFloat("alpha", 1), onnx.AttrFloat("beta", 1))
	return b.reshape(y, b.shape(b.unsq0(bs), b.unsq0(sl), out))
}

const gpt2NormFormat = "transformer.h.%d.ln_1.weight"

func buildGPT2(b *builder) {
	c := b.cfg
	hd := c.Hidden / c.Heads
	io := b.beginDecoder(c.Heads, hd, gpt2NormFormat)

	b.push("transformer")
	pos := io.pos
	if pos == "" {
		seq := b.dim(io.ids, 1)
		pastLen := "" // GPT-2 reads the past length only for positions
		if c.KVCache && io.mask == "" {
			pastLen = b.dim(io.past[0][0], 2)
		}
		pos = b.positions(io.mask, seq, pastLen)
	}
	b.push("wte")
	embValue, emb := b.embedding("transformer.wte.weight")
	te := b.op("Gather", embValue, io.ids)
	b.pop()
	b.push("wpe")
	pk := "transformer.wpe.weight"
	pe := b.op("Gather", b.initializer(pk, []int{c.MaxPos, c.Hidden}, normals(c.Seed, pk, c.MaxPos*c.Hidden, 0, embStd/2)), pos)
	b.pop()
	h := b.op("Add", te, pe)
	padding := ""
	if io.mask != "" {
		// (1 - mask[:, None, None, :]) · min
		m := b.opA("Cast", []string{b.unsqueeze(io.mask, 1, 2)}, onnx.AttrInt("to", int64(tFloat)))
		padding = b.op("Mul", b.op("Sub", b.f32(1), m), b.f32(negInf))
	}
	// The causal table, one constant shared by all layers, as in GPT-2 exports.
	tri := make([]bool, c.MaxPos*c.MaxPos)
	for i := 0; i < c.MaxPos; i++ {
		for j := 0; j <= i; j++ {
			tri[i*c.MaxPos+j] = true
		}
	}
	causal := ""
	for i := 0; i < c.Layers; i++ {
		key := fmt.Sprintf("transformer.h.%d", i)
		odd := c.Odd.Layer == i
		b.push(fmt.Sprintf("h.%d", i))
		x := b.layerNorm("ln_1", key+".ln_1", h, gpt2NormFormat, i)
		b.push("attn")
		qkv := b.conv1d("c_attn", key+".attn.c_attn", x, c.Hidden, 3*c.Hidden, projStd(c.Hidden), true)
		parts := b.node("Split", []string{qkv, b.i64s(int64(c.Hidden), int64(c.Hidden), int64(c.Hidden))}, 3, onnx.AttrInt("axis", 2))
		heads := func(t string, perm ...int64) string {
			return b.transpose(b.reshape(t, b.shape(b.unsq0(b.dim(t, 0)), b.unsq0(b.dim(t, 1)), c.Heads, hd)), perm...)
		}
		q := heads(parts[0], 0, 2, 1, 3)
		var kt, v string
		if c.KVCache {
			k := b.rename(b.opA("Concat", []string{io.past[i][0], heads(parts[1], 0, 2, 1, 3)}, onnx.AttrInt("axis", 2)), fmt.Sprintf("present.%d.key", i))
			v = b.rename(b.opA("Concat", []string{io.past[i][1], heads(parts[2], 0, 2, 1, 3)}, onnx.AttrInt("axis", 2)), fmt.Sprintf("present.%d.value", i))
			kt = b.transpose(k, 0, 1, 3, 2)
		} else {
			kt = heads(parts[1], 0, 2, 3, 1)
			v = heads(parts[2], 0, 2, 1, 3)
		}
		s := b.op("Div", b.op("MatMul", q, kt), b.f32(float32(math.Sqrt(float64(hd)))))
		if causal == "" {
			n := b.nextSerial()
			causal = fmt.Sprintf("onnx::Slice_%d", b.nextSerial())
			b.g.Node = append(b.g.Node, constantNode(fmt.Sprintf("Constant_%d", n), causal,
				tensor("", pb.TensorProto_BOOL, []int{1, 1, c.MaxPos, c.MaxPos}, tri)))
		}
		// bias[:, :, key_len - query_len : key_len, :key_len]
		ql, kl := b.dim(q, 2), b.dim(v, 2)
		rows := b.slice(causal, b.unsq0(b.op("Sub", kl, ql)), b.unsq0(kl), b.i64s(2), b.i64s(1))
		allowed := b.slice(rows, b.i64s(0), b.unsq0(kl), b.i64s(3), b.i64s(1))
		s = b.op("Where", allowed, s, b.f32(negInf))
		if padding != "" {
			s = b.op("Add", s, padding)
		}
		p := b.opA("Softmax", []string{s}, onnx.AttrInt("axis", -1))
		o := b.transpose(b.op("MatMul", p, v), 0, 2, 1, 3)
		o = b.reshape(o, b.shape(b.unsq0(b.dim(o, 0)), b.unsq0(b.dim(o, 1)), c.Hidden))
		o = b.conv1d("c_proj", key+".attn.c_proj", o, c.Hidden, c.Hidden, residStd(c.Hidden), !(odd && c.Odd.Kind == OddBias))
		b.pop()
		h = b.op("Add", h, o)
		x = b.layerNorm("ln_2", key+".ln_2", h, gpt2NormFormat, i)
		ffn := c.FFN
		if odd && c.Odd.Kind == OddFFN {
			ffn += c.FFN / 2
		}
		b.push("mlp")
		f := b.conv1d("c_fc", key+".mlp.c_fc", x, c.Hidden, ffn, projStd(c.Hidden), true)
		// gelu, tanh form: 0.5·f·(1 + tanh(√(2/π)·(f + 0.044715·f³)))
		half := b.op("Mul", f, b.f32(0.5))
		inner := b.op("Add", f, b.op("Mul", b.op("Pow", f, b.f32(3)), b.f32(0.044715)))
		t := b.op("Tanh", b.op("Mul", inner, b.f32(float32(math.Sqrt(2/math.Pi)))))
		g := b.op("Mul", half, b.op("Add", t, b.f32(1)))
		m := b.conv1d("c_proj", key+".mlp.c_proj", g, ffn, c.Hidden, residStd(ffn), true)
		b.pop()
		h = b.op("Add", h, m)
		b.pop()
	}
	h = b.layerNorm("ln_f", "transformer.ln_f", h, gpt2NormFormat, -1)
	b.pop()
	b.lmHead(h, embValue, emb)
}
