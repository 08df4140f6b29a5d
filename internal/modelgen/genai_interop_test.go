package modelgen

import (
	"fmt"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/npy"
)

// onnxruntime (npm onnxruntime-node, CPU: it runs the com.microsoft contrib
// ops) judges the genai-builder models against their plain twins. Skipped
// where the judges are not installed, failed under CI=true.

// dequantHook is a refModel hook that replaces each projection weight of c
// (row-major [in, out]) by quant(w, in, out): what a quantized model stores for
// it. Embeddings and norms pass through.
func dequantHook(t *testing.T, c Config, quant func(w []float32, in, out int) ([]float32, error)) func(string, []float32) []float32 {
	c = c.defaults()
	hd := c.Hidden / c.Heads
	return func(key string, w []float32) []float32 {
		var in, out int
		switch {
		case strings.HasSuffix(key, "q_proj.weight"):
			in, out = c.Hidden, c.Heads*hd
		case strings.HasSuffix(key, "k_proj.weight"), strings.HasSuffix(key, "v_proj.weight"):
			in, out = c.Hidden, c.KVHeads*hd
		case strings.HasSuffix(key, "o_proj.weight"):
			in, out = c.Heads*hd, c.Hidden
		case strings.HasSuffix(key, "gate_proj.weight"), strings.HasSuffix(key, "up_proj.weight"):
			in, out = c.Hidden, c.FFN
		case strings.HasSuffix(key, "down_proj.weight"):
			in, out = c.FFN, c.Hidden
		case key == "lm_head.weight":
			in, out = c.Hidden, c.Vocab
		default:
			return w
		}
		dq, err := quant(w, in, out)
		if err != nil {
			t.Errorf("dequantize %s: %v", key, err)
			return w
		}
		return dq
	}
}

// blocksHook quantizes blockwise to bits and back. Quantizing the genai
// model's packed q/k/v matrix column by column equals quantizing q, k and v
// apart: blocks run along K within one output column.
func blocksHook(t *testing.T, c Config, bits, block int, asym bool) func(string, []float32) []float32 {
	return dequantHook(t, c, func(w []float32, in, out int) ([]float32, error) {
		q, err := QuantizeBlocks(w, bits, in, out, block, asym)
		if err != nil {
			return nil, err
		}
		return q.Dequantize()
	})
}

// top1 returns the fraction of rows of [rows, vocab] logits whose arg max agree.
func top1(a, b []float32, vocab int) float64 {
	agree := 0
	for r := 0; r < len(a)/vocab; r++ {
		if stats.Argmax(a[r*vocab:(r+1)*vocab]) == stats.Argmax(b[r*vocab:(r+1)*vocab]) {
			agree++
		}
	}
	return float64(agree) / float64(len(a)/vocab)
}

func flatRef(r [][][]float64) []float32 {
	var out []float32
	for _, b := range r {
		for _, s := range b {
			for _, v := range s {
				out = append(out, float32(v))
			}
		}
	}
	return out
}

// runGenAI runs a genai model (float16 I/O bridged by float32IO) on feeds.
func runGenAI(t *testing.T, ort *judge.Runtime, g GenAIConfig, feeds map[string]*npy.Array) map[string]*npy.Array {
	t.Helper()
	m, cfg := mustBuildGenAI(t, g)
	if g.defaults().Precision == GenAIFP16 {
		m = Float32IO(m)
	}
	out, err := ort.Run(saveGenAI(t, m, cfg), feeds, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Quantization bounds for int4 against the float twin (symmetric 4-bit
// blocks of 32 normal weights: the step is |max|/8 ≈ 0.3σ, a rounding error
// of ≈ 0.08σ per weight, ≈ 8 % noise on every projection, compounded over
// 3 layers and the head). Measured on genaiBase: rms 0.115–0.135, top-1
// agreement 78–89 % of 18 rows (the random logits have small margins).
// 8-bit blocks have a 16 times finer step: measured rms 0.007–0.008.
const (
	int4RMSBound  = 0.25
	int8RMSBound  = 0.03
	int4Top1Bound = 0.5
)

// TestJudgeGenAI: onnxruntime runs each genai-layout variant; float layouts
// give the twin's logits (the twin run by onnxruntime too), int4 ones the
// logits of the float64 reference with dequantized weights.
func TestJudgeGenAI(t *testing.T) {
	tests := []struct {
		name string
		g    GenAIConfig
	}{
		{"fp32", genaiBase},
		{"fp32_opset14", genaiWith(func(g *GenAIConfig) { g.Opset = 14 })},
		{"fp32_mha", genaiWith(func(g *GenAIConfig) { g.KVHeads = 4; g.Layers = 2 })},
		{"int4", genaiWith(func(g *GenAIConfig) { g.Precision = GenAIInt4 })},
		{"int4_zero_points", genaiWith(func(g *GenAIConfig) { g.Precision, g.Asymmetric = GenAIInt4, true })},
		{"int4_block16", genaiWith(func(g *GenAIConfig) { g.Precision, g.BlockSize = GenAIInt4, 16 })},
		{"int4_accuracy4", genaiWith(func(g *GenAIConfig) { g.Precision, g.AccuracyLevel = GenAIInt4, 4 })},
		{"int8", genaiWith(func(g *GenAIConfig) { g.Precision = GenAIInt8 })},
		{"int8_zero_points", genaiWith(func(g *GenAIConfig) { g.Precision, g.Asymmetric = GenAIInt8, true })},
		{"fp16", genaiWith(func(g *GenAIConfig) { g.Precision = GenAIFP16 })},
	}
	short := map[string]bool{"fp32": true, "int4": true, "int8": true, "fp16": true}
	for _, tt := range tests {
		if testing.Short() && !short[tt.name] {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ort := judge.ORT(t)
			g := tt.g.defaults()
			twin := g.Twin()
			in := sample(twin, 3, 2, 9, 0) // GQA reads positions from seqlens_k: no left padding
			f := feeds(t, twin, in, 0, nil)
			got := float32s(t, runGenAI(t, ort, g, f)["logits"])
			tw, err := ort.Run(saveModel(t, mustBuild(t, twin)), f, []string{"logits"})
			if err != nil {
				t.Fatal(err)
			}
			want := float32s(t, tw["logits"])
			if len(got) != len(want) {
				t.Fatalf("%d logits, twin %d", len(got), len(want))
			}
			d := stats.RelMax(got, want)
			switch g.Precision {
			case GenAIFP32:
				t.Logf("max |genai − twin| / max |twin| = %.3g", d)
				if d > 1e-5 {
					t.Errorf("max |genai − twin| / max |twin| = %.3g, want ≤ 1e-5", d)
				}
			case GenAIFP16:
				// float16 activations (the builder's fp16 model computes in
				// fp16): 11-bit mantissas through 3 layers.
				t.Logf("fp16: max |genai − twin(fp16 weights)| / max |twin| = %.3g, rms %.3g, top-1 %.2f", d, stats.RelRMS(got, want), top1(got, want, g.Vocab))
				if d > 2e-2 {
					t.Errorf("fp16: max |genai − twin| / max |twin| = %.3g, want ≤ 2e-2", d)
				}
			case GenAIInt4, GenAIInt8:
				ref := flatRef(refModel{c: twin, dequant: blocksHook(t, twin, g.bits(), g.BlockSize, g.Asymmetric)}.logits(refInput{ids: in.ids, mask: in.mask}))
				dr := stats.RelMax(got, ref)
				rms, agree := stats.RelRMS(got, want), top1(got, want, g.Vocab)
				t.Logf("%s: max |ort − dequantized reference| / max = %.3g; against the float twin: rms %.3g, top-1 %.2f", g.Precision, dr, rms, agree)
				bound := 1e-5
				if g.AccuracyLevel == 4 {
					bound = 2e-2 // level 4 quantizes the activations to int8 too (NOTES.md: 0.3–0.7 %)
				}
				if dr > bound {
					t.Errorf("%s: max |ort − dequantized reference| / max = %.3g, want ≤ %g", g.Precision, dr, bound)
				}
				rmsBound := int4RMSBound
				if g.bits() == 8 {
					rmsBound = int8RMSBound
				}
				if rms > rmsBound || agree < int4Top1Bound {
					t.Errorf("%s against the float twin: rms %.3g (want ≤ %g), top-1 %.2f (want ≥ %g)", g.Precision, rms, rmsBound, agree, int4Top1Bound)
				}
			}
		})
	}
}

// TestJudgeGenAIKVCache: with a non-empty past, the logits of the new tokens
// equal those of the full-sequence run, and the presents agree. onnxruntime's
// GroupQueryAttention takes several new tokens over a past only at batch 1.
func TestJudgeGenAIKVCache(t *testing.T) {
	for _, p := range []string{GenAIFP32, GenAIInt4, GenAIInt8, GenAIFP16} {
		for _, c := range []struct{ B, New int }{{2, 1}, {1, 3}} {
			if testing.Short() && c.B == 1 && p != GenAIFP32 {
				continue
			}
			t.Run(fmt.Sprintf("%s_batch%d_new%d", p, c.B, c.New), func(t *testing.T) {
				t.Parallel()
				ort := judge.ORT(t)
				g := genaiWith(func(g *GenAIConfig) { g.Precision = p }).defaults()
				twin := g.Twin()
				const T = 10
				B, k := c.B, c.New
				in := sample(twin, 8, B, T, 0)
				full := runGenAI(t, ort, g, feeds(t, twin, in, 0, nil))
				first := refInput{ids: columns(in.ids, 0, T-k), mask: columns(in.mask, 0, T-k)}
				past := runGenAI(t, ort, g, feeds(t, twin, first, 0, nil))
				last := refInput{ids: columns(in.ids, T-k, T), mask: in.mask}
				step := runGenAI(t, ort, g, feeds(t, twin, last, T-k, past))
				if got := step["present.0.key"].Shape; fmt.Sprint(got) != fmt.Sprint([]int{B, g.KVHeads, T, g.Hidden / g.Heads}) {
					t.Fatalf("present.0.key shape %v", got)
				}
				fl, sl := float32s(t, full["logits"]), float32s(t, step["logits"])
				V := g.Vocab
				var a, b []float32
				for r := 0; r < B; r++ {
					a = append(a, fl[(r*T+T-k)*V:(r*T+T)*V]...)
					b = append(b, sl[r*k*V:(r+1)*k*V]...)
				}
				bound := 1e-5
				if p == GenAIFP16 {
					bound = 5e-3 // float16 sums in another order
				}
				d := stats.RelMax(b, a)
				t.Logf("last %d positions: max |cached − full| / max = %.3g", k, d)
				if d > bound {
					t.Errorf("last %d positions: max |cached − full| / max = %.3g, want ≤ %g", k, d, bound)
				}
				// Control: the same new tokens over another sequence's past
				// give other logits, so the past is read.
				other := refInput{ids: columns(sample(twin, 9, B, T, 0).ids, 0, T-k), mask: first.mask}
				alt := runGenAI(t, ort, g, feeds(t, twin, last, T-k, runGenAI(t, ort, g, feeds(t, twin, other, 0, nil))))
				if d := stats.RelMax(float32s(t, alt["logits"]), b); d < 1e-2 {
					t.Errorf("another past changes the logits by only %.3g", d)
				}
				for name, arr := range full {
					if !strings.HasPrefix(name, "present.") {
						continue
					}
					if d := stats.RelMax(float32s(t, step[name]), float32s(t, arr)); d > bound {
						t.Errorf("%s: max |cached − full| / max = %.3g, want ≤ %g", name, d, bound)
					}
				}
			})
		}
	}
}
