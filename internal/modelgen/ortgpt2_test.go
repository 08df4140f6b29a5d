package modelgen

import (
	"fmt"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/npy"
)

var optGPT2Base = OptimizedGPT2Twin(3, 64, 4, 5, 17)

// TestOptimizedGPT2Structure: the fused op counts onnxruntime's own
// test_optimizer.py expects of a GPT-2 with past (test_gpt2_past with skip
// fusion: one LayerNormalization, two SkipLayerNormalization a layer, one
// Attention and one FastGelu a layer, no EmbedLayerNormalization), the
// Attention's inputs and attributes, and the interface.
func TestOptimizedGPT2Structure(t *testing.T) {
	m, err := BuildOptimizedGPT2(optGPT2Base)
	if err != nil {
		t.Fatal(err)
	}
	L := optGPT2Base.Layers
	count := map[string]int{}
	for _, n := range m.GetGraph().GetNode() {
		count[n.GetDomain()+":"+n.GetOpType()]++
		if n.GetOpType() == "Attention" {
			if got := strings.Join(n.Input, ","); !strings.HasSuffix(got, ",attention_mask_int32,past_"+strings.TrimPrefix(n.GetName(), "GptAttention_")) {
				t.Errorf("%s inputs %s", n.GetName(), got)
			}
			if len(n.Attribute) != 2 || n.Attribute[0].GetName() != "num_heads" || n.Attribute[0].GetI() != 4 || n.Attribute[1].GetName() != "unidirectional" || n.Attribute[1].GetI() != 1 {
				t.Errorf("%s attributes %v", n.GetName(), n.Attribute)
			}
		}
		if n.GetOpType() == "SkipLayerNormalization" && len(n.Input) != 5 {
			t.Errorf("%s: %d inputs, want 5 (the bias fused)", n.GetName(), len(n.Input))
		}
	}
	want := map[string]int{
		":LayerNormalization": 1, "com.microsoft:SkipLayerNormalization": 2 * L, "com.microsoft:Attention": L,
		"com.microsoft:FastGelu": L, ":MatMul": 3*L + 1, ":Gather": 2, ":Add": 1, ":Cast": 1,
	}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%s: %d nodes, want %d", k, count[k], v)
		}
	}
	if len(count) != len(want) {
		t.Errorf("ops %v, want %v", count, want)
	}
	var ins []string
	for _, in := range m.GetGraph().GetInput() {
		ins = append(ins, in.GetName())
	}
	if got := strings.Join(ins, " "); got != "input_ids position_ids attention_mask past_0 past_1 past_2" {
		t.Errorf("inputs %s", got)
	}
	if _, err := BuildOptimizedGPT2(Config{Arch: GPT2, Layers: 2, Hidden: 64, Heads: 4}); err == nil {
		t.Error("a twin without KV cache was accepted")
	}
}

// optFeeds are the optimized model's inputs for in over a past of pastLen
// positions (present_i of an earlier run, or empty).
func optFeeds(t *testing.T, c Config, in refInput, pastLen int, past map[string]*npy.Array) map[string]*npy.Array {
	t.Helper()
	c = c.defaults()
	f := feeds(t, c, in, pastLen, nil)
	for i := 0; i < c.Layers; i++ {
		delete(f, fmt.Sprintf("past_key_values.%d.key", i))
		delete(f, fmt.Sprintf("past_key_values.%d.value", i))
		name := fmt.Sprintf("past_%d", i)
		if past != nil {
			f[name] = past[fmt.Sprintf("present_%d", i)]
			continue
		}
		a, err := npy.New([]int{2, len(in.ids), c.Heads, 0, c.Hidden / c.Heads}, []float32{})
		if err != nil {
			t.Fatal(err)
		}
		f[name] = a
	}
	return f
}

// TestJudgeOptimizedGPT2: onnxruntime gives the optimized model the twin's
// logits and presents (present_i = the twin's key and value stacked), and
// with a non-empty past the new tokens' logits of the full run.
func TestJudgeOptimizedGPT2(t *testing.T) {
	for _, opset := range []int{17, 14} {
		t.Run(fmt.Sprintf("opset%d", opset), func(t *testing.T) {
			ort := judge.ORT(t)
			c := OptimizedGPT2Twin(3, 64, 4, 5, opset)
			m, err := BuildOptimizedGPT2(c)
			if err != nil {
				t.Fatal(err)
			}
			path := saveModel(t, m)
			const B, T, k = 2, 9, 2
			in := sample(c, 3, B, T, 0)
			got, err := ort.Run(path, optFeeds(t, c, in, 0, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			tw, err := ort.Run(saveModel(t, mustBuild(t, c)), feeds(t, c, in, 0, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			d := stats.RelMax(float32s(t, got["logits"]), float32s(t, tw["logits"]))
			t.Logf("max |optimized − twin| / max |twin| = %.3g", d)
			if d > 1e-5 {
				t.Errorf("logits: max |optimized − twin| / max |twin| = %.3g, want ≤ 1e-5", d)
			}
			for i := 0; i < c.Layers; i++ {
				p := float32s(t, got[fmt.Sprintf("present_%d", i)])
				kv := append(float32s(t, tw[fmt.Sprintf("present.%d.key", i)]), float32s(t, tw[fmt.Sprintf("present.%d.value", i)])...)
				if d := stats.RelMax(p, kv); d > 1e-5 {
					t.Errorf("present_%d: %.3g from the twin's key and value", i, d)
				}
			}
			first := refInput{ids: columns(in.ids, 0, T-k), mask: columns(in.mask, 0, T-k)}
			past, err := ort.Run(path, optFeeds(t, c, first, 0, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			step, err := ort.Run(path, optFeeds(t, c, refInput{ids: columns(in.ids, T-k, T), mask: in.mask}, T-k, past), []string{"logits"})
			if err != nil {
				t.Fatal(err)
			}
			fl, sl := float32s(t, got["logits"]), float32s(t, step["logits"])
			V := c.defaults().Vocab
			var a, b []float32
			for r := 0; r < B; r++ {
				a = append(a, fl[(r*T+T-k)*V:(r*T+T)*V]...)
				b = append(b, sl[r*k*V:(r+1)*k*V]...)
			}
			if d := stats.RelMax(b, a); d > 1e-5 {
				t.Errorf("last %d positions over a past of %d: max |cached − full| / max = %.3g, want ≤ 1e-5", k, T-k, d)
			}
		})
	}
}
