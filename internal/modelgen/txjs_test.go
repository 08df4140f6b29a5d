package modelgen

import (
	"errors"
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// txjsConfigs are optimum-style exports (folded weights) that transformers.js
// quantizes: with KV cache, GQA, a mask and position_ids (tiny_llama_kv), and
// without a cache (tiny_llama's form).
var txjsConfigs = map[string]Config{
	"kv": {Arch: Llama, Layers: 3, Hidden: 64, Heads: 4, KVHeads: 2, FFN: 80, KVCache: true, AttentionMask: true,
		PositionIDs: true, TransposedWeights: true, Seed: 21},
	"plain": {Arch: Llama, Layers: 2, Hidden: 48, Heads: 4, FFN: 96, Opset: 14, TransposedWeights: true, Seed: 22},
}

func TestTransformersJSStructure(t *testing.T) {
	for name, c := range txjsConfigs {
		L := c.Layers
		for _, tt := range []struct {
			variant string
			want    map[string]int
		}{
			{TransformersJSQ4, map[string]int{"com.microsoft:MatMulNBits": 7*L + 1}},
			{TransformersJSQuantized, map[string]int{":MatMulInteger": 7*L + 1, ":DynamicQuantizeLinear": 4*L + 1, // one per activation: q/k/v and gate/up share theirs
				":DequantizeLinear": 1}},
		} {
			m, err := BuildTransformersJS(c, tt.variant)
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for _, n := range m.Graph.Node {
				count[n.GetDomain()+":"+n.GetOpType()]++
			}
			for op, n := range tt.want {
				if count[op] != n {
					t.Errorf("%s %s: %d %s, want %d", name, tt.variant, count[op], op, n)
				}
			}
			for _, init := range m.Graph.Initializer {
				if init.GetDataType() == int32(pb.TensorProto_FLOAT) && len(init.Dims) == 2 &&
					(tt.variant != TransformersJSQ4 || init.GetName() != "model.embed_tokens.weight") { // q4 leaves Gather alone
					t.Errorf("%s %s: float weight %s left", name, tt.variant, init.GetName())
				}
			}
		}
	}
	if _, err := BuildTransformersJS(Config{Arch: Llama, Layers: 1, Hidden: 16, Heads: 2}, TransformersJSQ4); !errors.Is(err, ErrConfig) {
		t.Errorf("unfolded weights: err = %v, want ErrConfig", err)
	}
	if _, err := BuildTransformersJS(txjsConfigs["kv"], "bnb4"); !errors.Is(err, ErrConfig) {
		t.Errorf("variant bnb4: err = %v, want ErrConfig", err)
	}
}

// dynamicQuant is DynamicQuantizeLinear and back, over the whole tensor x,
// in float32 as onnxruntime computes it: scale = (max(x, 0) − min(x, 0))/255,
// zero point = round(−min/scale), q = saturate(round(x/scale) + zp), rounding
// half to even.
func dynamicQuant(x [][]float64) [][]float64 {
	var lo, hi float32
	for _, row := range x {
		for _, v := range row {
			lo, hi = min(lo, float32(v)), max(hi, float32(v))
		}
	}
	scale := (hi - lo) / 255
	out := make([][]float64, len(x))
	for i, row := range x {
		out[i] = make([]float64, len(row))
		if scale == 0 {
			continue
		}
		zp := math.RoundToEven(min(max(float64(0-lo/scale), 0), 255))
		for j, v := range row {
			q := min(max(math.RoundToEven(float64(float32(v)/scale))+zp, 0), 255)
			out[i][j] = (q - zp) * float64(scale)
		}
	}
	return out
}

// refDiff returns max |got − want| and max |want| over the positions whose
// mask is 1.
func refDiff(got []float32, want [][][]float64, mask [][]int64) (diff, scale float64) {
	i := 0
	for b := range want {
		for s := range want[b] {
			for _, w := range want[b][s] {
				if mask == nil || mask[b][s] != 0 {
					diff = math.Max(diff, math.Abs(float64(got[i])-w))
					scale = math.Max(scale, math.Abs(w))
				}
				i++
			}
		}
	}
	return diff, scale
}

// TestJudgeTransformersJS: onnxruntime runs model_q4 and model_quantized and
// gives the logits of the float64 reference with the quantized weights (and,
// for int8, every projection input through a DynamicQuantizeLinear round
// trip, the embedding table int8 too) within 1e-5, and those of the float
// reference within what the quantization allows. int8 runs are at batch 1:
// DynamicQuantizeLinear takes one scale over the whole tensor.
func TestJudgeTransformersJS(t *testing.T) {
	for name, c := range txjsConfigs {
		c := c.defaults()
		for _, variant := range []string{TransformersJSQ4, TransformersJSQuantized} {
			t.Run(name+"_"+variant, func(t *testing.T) {
				t.Parallel()
				ort := judge.ORT(t)
				m, err := BuildTransformersJS(c, variant)
				if err != nil {
					t.Fatal(err)
				}
				path := saveModel(t, m)
				B, pad := 2, 0
				if c.AttentionMask {
					pad = 3
				}
				if variant == TransformersJSQuantized {
					B, pad = 1, 0
				}
				in := sample(c, 4, B, 11, pad)
				out, err := ort.Run(path, feeds(t, c, in, 0, nil), []string{"logits"})
				if err != nil {
					t.Fatal(err)
				}
				got := float32s(t, out["logits"])
				ref := refInput{ids: in.ids}
				if c.AttentionMask {
					ref.mask = in.mask
				}
				if c.PositionIDs {
					ref.pos = maskPositions(c, in)
				}
				float := refModel{c: c}.logits(ref)
				var hook func(string, []float32) []float32
				if variant == TransformersJSQ4 {
					hook = blocksHook(t, c, 4, 32, false)
				} else {
					proj := dequantHook(t, c, func(w []float32, _, _ int) ([]float32, error) { return QuantizeInt8(w).Dequantize(), nil })
					hook = func(key string, w []float32) []float32 {
						if key == "model.embed_tokens.weight" { // the Gather's table is quantized too
							return QuantizeInt8(w).Dequantize()
						}
						return proj(key, w)
					}
				}
				r := refModel{c: c, dequant: hook}
				if variant == TransformersJSQuantized {
					r.act = dynamicQuant
				}
				dq := r.logits(ref)
				d, s := refDiff(got, dq, ref.mask)
				df, sf := refDiff(got, float, ref.mask)
				t.Logf("%s: max |ort − quantized reference| / max = %.3g; against the float reference %.3g", variant, d/s, df/sf)
				if variant == TransformersJSQ4 {
					if d > 1e-5*s {
						t.Errorf("q4: max |ort − dequantized reference| / max = %.3g, want ≤ 1e-5", d/s)
					}
					if df > 0.5*sf {
						t.Errorf("q4: max |ort − float reference| / max = %.3g, want ≤ 0.5", df/sf)
					}
					return
				}
				// The reference rounds activations computed in float64 to uint8,
				// onnxruntime those computed in float32: a value within float32
				// error of a rounding boundary would land one step (1/255 of the
				// tensor's range) away, ~1e-3 here. These inputs have none
				// (measured 5e-8).
				if d > 1e-5*s {
					t.Errorf("int8: max |ort − int8 reference| / max = %.3g, want ≤ 1e-5", d/s)
				}
				if df > 0.05*sf {
					t.Errorf("int8: max |ort − float reference| / max = %.3g, want ≤ 0.05", df/sf)
				}
			})
		}
	}
}
