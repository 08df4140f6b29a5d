package modelgen

import (
	"fmt"
	"math"
)

// Graphs that are not one stack of identical decoder layers, for the refusal
// tests of layer discovery.

// buildEncDec is a T5-like encoder-decoder: an encoder stack (bidirectional
// self-attention) and a decoder stack (causal self-attention, cross-attention
// on the encoder output), both with RMSNorm, RoPE and SwiGLU, sharing the
// embedding.
func buildEncDec(b *builder) {
	c := b.cfg
	ids := b.input("input_ids", tInt64, dimBatch, "encoder_sequence_length")
	dec := b.input("decoder_input_ids", tInt64, dimBatch, "decoder_sequence_length")
	b.output("logits", tFloat, dimBatch, "decoder_sequence_length", c.Vocab)

	b.push("shared")
	embValue, emb := b.embedding("shared.weight")
	b.pop()

	block := func(stack string, i int, h string, self attention, cross string) string {
		key := fmt.Sprintf("%s.layers.%d", stack, i)
		b.push(fmt.Sprintf("layers.%d", i))
		defer b.pop()
		norm := func(name, x string) string {
			b.push(name)
			w := b.normWeight(key+"."+name+".weight", "", -1)
			b.pop()
			return b.rmsNorm(name, x, w)
		}
		self.key = key + ".self_attn"
		self.x = norm("self_attn_layernorm", h)
		self.kv = self.x
		b.push("self_attn")
		h = b.op("Add", h, b.llamaAttention(self))
		b.pop()
		if cross != "" {
			x := norm("encoder_attn_layernorm", h)
			b.push("encoder_attn")
			h = b.op("Add", h, b.llamaAttention(attention{key: key + ".encoder_attn", x: x, kv: cross}))
			b.pop()
		}
		x := norm("final_layernorm", h)
		b.push("mlp")
		defer b.pop()
		return b.op("Add", h, b.swiGLU(key+".mlp", x, c.FFN))
	}
	finalNorm := func(stack, h string) string {
		b.push("norm")
		w := b.normWeight(stack+".norm.weight", "", -1)
		b.pop()
		return b.rmsNorm("norm", h, w)
	}

	b.push("encoder")
	seq := b.dim(ids, 1)
	cos, sin := b.rotary(b.positions("", seq, ""), seq)
	b.push("embed_tokens")
	h := b.op("Gather", embValue, ids)
	b.pop()
	for i := 0; i < c.Layers; i++ {
		h = block("encoder", i, h, attention{cos: cos, sin: sin}, "")
	}
	enc := finalNorm("encoder", h)
	b.pop()

	b.push("decoder")
	seq = b.dim(dec, 1)
	cos, sin = b.rotary(b.positions("", seq, ""), seq)
	bias := b.attentionBias("", seq, "")
	b.push("embed_tokens")
	h = b.op("Gather", embValue, dec)
	b.pop()
	for i := 0; i < c.Layers; i++ {
		h = block("decoder", i, h, attention{cos: cos, sin: sin, bias: bias}, enc)
	}
	h = finalNorm("decoder", h)
	b.pop()
	b.lmHead(h, embValue, emb)
}

// buildMLP is embedding → Layers × (fc1, Relu, fc2, Relu) → lm_head: a stack of
// identical blocks with no residual stream.
func buildMLP(b *builder) {
	c := b.cfg
	ids := b.input("input_ids", tInt64, dimBatch, dimSeq)
	b.output("logits", tFloat, dimBatch, dimSeq, c.Vocab)
	b.push("model")
	b.push("embed_tokens")
	embValue, emb := b.embedding("model.embed_tokens.weight")
	h := b.op("Gather", embValue, ids)
	b.pop()
	he := func(in int) float64 { return math.Sqrt2 * projStd(in) }
	for i := 0; i < c.Layers; i++ {
		key := fmt.Sprintf("model.layers.%d", i)
		b.push(fmt.Sprintf("layers.%d", i))
		h = b.op("Relu", b.linear("fc1", key+".fc1", h, c.Hidden, c.FFN, he(c.Hidden), true))
		h = b.op("Relu", b.linear("fc2", key+".fc2", h, c.FFN, c.Hidden, he(c.FFN), true))
		b.pop()
	}
	b.pop()
	b.lmHead(h, embValue, emb)
}
