package modelgen

import (
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/onnx"
)

// A float64 forward pass written from the architectures' definitions (Hugging
// Face LlamaForCausalLM, GPT2LMHeadModel), independent of the graph builder:
// it shares only the weight generator and the parameter names. The interop
// tests compare onnxruntime's logits on the generated graphs with it.

type refInput struct {
	ids  [][]int64 // [batch][seq]
	mask [][]int64 // attention_mask or nil
	pos  [][]int64 // position_ids or nil
}

type refModel struct {
	c Config
	// dequant, when set, replaces each weight as generated (row-major [in,
	// out] for projections) by what a quantized model stores for it.
	dequant func(key string, w []float32) []float32
	// act, when set, replaces the input of every Llama projection and of the
	// head by what a dynamically quantized model computes with (a
	// DynamicQuantizeLinear round trip).
	act func(x [][]float64) [][]float64
}

// projIn is the input a projection reads: x, or r.act(x).
func (r refModel) projIn(x [][]float64) [][]float64 {
	if r.act == nil {
		return x
	}
	return r.act(x)
}

// param returns a weight as the builder generates it, rounded to float16 when
// the model stores float16.
func (r refModel) param(key string, n int, mean, std float64) []float64 {
	w := normals(r.c.Seed, key, n, mean, std)
	if r.dequant != nil {
		w = r.dequant(key, w)
	}
	out := make([]float64, n)
	for i, v := range w {
		if r.c.Float16 {
			v = float16Round(v)
		}
		out[i] = float64(v)
	}
	return out
}

func float16Round(v float32) float32 {
	return onnx.Float16ToFloat32(onnx.Float32ToFloat16(v))
}

// inputNorm returns the first norm's weight of a layer (deduplicated: layer 0's).
func (r refModel) inputNorm(format string, layer int) []float64 {
	if r.c.DedupIdentity {
		layer = 0
	}
	return r.param(fmt.Sprintf(format, layer), r.c.Hidden, 1, normStd)
}

// linear is x·W + b for x [n][in], W row-major [in][out].
func linear(x [][]float64, w []float64, b []float64, out int) [][]float64 {
	y := make([][]float64, len(x))
	for i, row := range x {
		y[i] = make([]float64, out)
		for k, xv := range row {
			wr := w[k*out : (k+1)*out]
			for j := range y[i] {
				y[i][j] += xv * wr[j]
			}
		}
		for j := range b {
			y[i][j] += b[j]
		}
	}
	return y
}

func rmsNormRef(x []float64, w []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+rmsEps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = w[i] * v * s
	}
	return out
}

func layerNormRef(x, w, b []float64) []float64 {
	m, v := stats.MeanVar(x)
	s := 1 / math.Sqrt(v+lnEps)
	out := make([]float64, len(x))
	for i, e := range x {
		out[i] = (e-m)*s*w[i] + b[i]
	}
	return out
}

// positionsRef follows the graph's rules: position_ids if given, else from
// the mask (cumsum - 1, 1 where masked) with a KV cache, else 0..seq-1.
func (r refModel) positionsRef(in refInput) [][]int64 {
	if in.pos != nil {
		return in.pos
	}
	pos := make([][]int64, len(in.ids))
	for b := range in.ids {
		pos[b] = make([]int64, len(in.ids[b]))
		var cum int64
		for t := range pos[b] {
			if r.c.KVCache && in.mask != nil {
				cum += in.mask[b][t]
				pos[b][t] = cum - 1
				if in.mask[b][t] == 0 {
					pos[b][t] = 1
				}
			} else {
				pos[b][t] = int64(t)
			}
		}
	}
	return pos
}

// attend computes softmax(q·kᵀ/√hd + mask)·v for one batch row; q [T][heads·hd],
// k, v [T][kvHeads·hd]; query t attends key s when s ≤ t and mask[s] != 0.
func attend(q, k, v [][]float64, heads, kvHeads, hd int, mask []int64) [][]float64 {
	T := len(q)
	out := make([][]float64, T)
	for t := range out {
		out[t] = make([]float64, heads*hd)
	}
	rep := heads / kvHeads
	for h := 0; h < heads; h++ {
		kh := h / rep
		for t := 0; t < T; t++ {
			// Only allowed keys take part: a query with none (left padding) gets
			// zeros, and a masked key's values never reach the sum.
			var keys []int
			var scores []float64
			maxS := math.Inf(-1)
			for s := 0; s <= t; s++ {
				if mask != nil && mask[s] == 0 {
					continue
				}
				var d float64
				for j := 0; j < hd; j++ {
					d += q[t][h*hd+j] * k[s][kh*hd+j]
				}
				keys = append(keys, s)
				scores = append(scores, d/math.Sqrt(float64(hd)))
				maxS = math.Max(maxS, d/math.Sqrt(float64(hd)))
			}
			var sum float64
			for i := range scores {
				scores[i] = math.Exp(scores[i] - maxS)
				sum += scores[i]
			}
			for i, s := range keys {
				p := scores[i] / sum
				for j := 0; j < hd; j++ {
					out[t][h*hd+j] += p * v[s][kh*hd+j]
				}
			}
		}
	}
	return out
}

// rope rotates each head of x [T][n·hd] by its position (rotate_half form).
func rope(x [][]float64, pos []int64, hd int) {
	for t, row := range x {
		for h := 0; h < len(row)/hd; h++ {
			v := row[h*hd : (h+1)*hd]
			rot := make([]float64, hd)
			for j := 0; j < hd/2; j++ {
				a := float64(pos[t]) / math.Pow(10000, float64(2*j)/float64(hd))
				c, s := math.Cos(a), math.Sin(a)
				x1, x2 := v[j], v[j+hd/2]
				rot[j] = x1*c - x2*s
				rot[j+hd/2] = x2*c + x1*s
			}
			copy(v, rot)
		}
	}
}

// logits returns [batch][seq][vocab]. Rows of query positions whose own mask
// is 0 are computed but not meaningful (the tests skip them).
func (r refModel) logits(in refInput) [][][]float64 {
	c := r.c
	pos := r.positionsRef(in)
	out := make([][][]float64, len(in.ids))
	for b := range in.ids {
		var mask []int64
		if in.mask != nil {
			mask = in.mask[b]
		}
		switch c.Arch {
		case Llama:
			out[b] = r.llamaRow(in.ids[b], mask, pos[b])
		case GPT2:
			out[b] = r.gpt2Row(in.ids[b], mask, pos[b])
		default:
			panic("reference: arch " + c.Arch)
		}
	}
	return out
}

func (r refModel) embed(key string, ids []int64) ([][]float64, []float64) {
	c := r.c
	emb := r.param(key, c.Vocab*c.Hidden, 0, embStd)
	x := make([][]float64, len(ids))
	for t, id := range ids {
		x[t] = append([]float64{}, emb[int(id)*c.Hidden:(int(id)+1)*c.Hidden]...)
	}
	return x, emb
}

func (r refModel) head(x [][]float64, emb []float64) [][]float64 {
	c := r.c
	var w []float64
	if c.TiedEmbeddings {
		w = make([]float64, len(emb))
		for i := 0; i < c.Vocab; i++ {
			for j := 0; j < c.Hidden; j++ {
				w[j*c.Vocab+i] = emb[i*c.Hidden+j]
			}
		}
	} else {
		w = r.param("lm_head.weight", c.Hidden*c.Vocab, 0, projStd(c.Hidden))
	}
	return linear(r.projIn(x), w, nil, c.Vocab)
}

func addInto(x, y [][]float64) {
	for t := range x {
		for j := range x[t] {
			x[t][j] += y[t][j]
		}
	}
}

func (r refModel) llamaRow(ids, mask, pos []int64) [][]float64 {
	c := r.c
	hd := c.Hidden / c.Heads
	x, emb := r.embed("model.embed_tokens.weight", ids)
	for i := 0; i < c.Layers; i++ {
		key := fmt.Sprintf("model.layers.%d", i)
		odd := c.Odd.Layer == i
		h := make([][]float64, len(x))
		w := r.inputNorm(llamaNormFormat, i)
		for t := range x {
			h[t] = rmsNormRef(x[t], w)
		}
		proj := func(name string, out int) [][]float64 {
			var bias []float64
			if odd && c.Odd.Kind == OddBias {
				bias = r.param(key+".self_attn."+name+".bias", out, 0, biasStd)
			}
			return linear(r.projIn(h), r.param(key+".self_attn."+name+".weight", c.Hidden*out, 0, projStd(c.Hidden)), bias, out)
		}
		q, k, v := proj("q_proj", c.Heads*hd), proj("k_proj", c.KVHeads*hd), proj("v_proj", c.KVHeads*hd)
		rope(q, pos, hd)
		rope(k, pos, hd)
		a := attend(q, k, v, c.Heads, c.KVHeads, hd, mask)
		addInto(x, linear(r.projIn(a), r.param(key+".self_attn.o_proj.weight", c.Hidden*c.Hidden, 0, residStd(c.Hidden)), nil, c.Hidden))
		w = r.param(key+".post_attention_layernorm.weight", c.Hidden, 1, normStd)
		for t := range x {
			h[t] = rmsNormRef(x[t], w)
		}
		ffn := c.FFN
		if odd && c.Odd.Kind == OddFFN {
			ffn += c.FFN / 2
		}
		g := linear(r.projIn(h), r.param(key+".mlp.gate_proj.weight", c.Hidden*ffn, 0, projStd(c.Hidden)), nil, ffn)
		u := linear(r.projIn(h), r.param(key+".mlp.up_proj.weight", c.Hidden*ffn, 0, projStd(c.Hidden)), nil, ffn)
		for t := range g {
			for j, gv := range g[t] {
				g[t][j] = gv / (1 + math.Exp(-gv)) * u[t][j]
			}
		}
		addInto(x, linear(r.projIn(g), r.param(key+".mlp.down_proj.weight", ffn*c.Hidden, 0, residStd(ffn)), nil, c.Hidden))
	}
	w := r.param("model.norm.weight", c.Hidden, 1, normStd)
	for t := range x {
		x[t] = rmsNormRef(x[t], w)
	}
	return r.head(x, emb)
}

func (r refModel) gpt2Row(ids, mask, pos []int64) [][]float64 {
	c := r.c
	hd := c.Hidden / c.Heads
	x, emb := r.embed("transformer.wte.weight", ids)
	wpe := r.param("transformer.wpe.weight", c.MaxPos*c.Hidden, 0, embStd/2)
	for t := range x {
		for j := range x[t] {
			x[t][j] += wpe[int(pos[t])*c.Hidden+j]
		}
	}
	norm := func(key string, w []float64) [][]float64 {
		b := r.param(key+".bias", c.Hidden, 0, biasStd)
		h := make([][]float64, len(x))
		for t := range x {
			h[t] = layerNormRef(x[t], w, b)
		}
		return h
	}
	conv := func(key string, h [][]float64, in, out int, std float64, bias bool) [][]float64 {
		var b []float64
		if bias {
			b = r.param(key+".bias", out, 0, biasStd)
		}
		return linear(h, r.param(key+".weight", in*out, 0, std), b, out)
	}
	for i := 0; i < c.Layers; i++ {
		key := fmt.Sprintf("transformer.h.%d", i)
		odd := c.Odd.Layer == i
		h := norm(key+".ln_1", r.inputNorm(gpt2NormFormat, i))
		qkv := conv(key+".attn.c_attn", h, c.Hidden, 3*c.Hidden, projStd(c.Hidden), true)
		q, k, v := make([][]float64, len(qkv)), make([][]float64, len(qkv)), make([][]float64, len(qkv))
		for t, row := range qkv {
			q[t], k[t], v[t] = row[:c.Hidden], row[c.Hidden:2*c.Hidden], row[2*c.Hidden:]
		}
		a := attend(q, k, v, c.Heads, c.Heads, hd, mask)
		addInto(x, conv(key+".attn.c_proj", a, c.Hidden, c.Hidden, residStd(c.Hidden), !(odd && c.Odd.Kind == OddBias)))
		h = norm(key+".ln_2", r.param(key+".ln_2.weight", c.Hidden, 1, normStd))
		ffn := c.FFN
		if odd && c.Odd.Kind == OddFFN {
			ffn += c.FFN / 2
		}
		f := conv(key+".mlp.c_fc", h, c.Hidden, ffn, projStd(c.Hidden), true)
		for t := range f {
			for j, e := range f[t] {
				f[t][j] = 0.5 * e * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(e+0.044715*e*e*e)))
			}
		}
		addInto(x, conv(key+".mlp.c_proj", f, ffn, c.Hidden, residStd(ffn), true))
	}
	x = norm("transformer.ln_f", r.param("transformer.ln_f.weight", c.Hidden, 1, normStd))
	return r.head(x, emb)
}
