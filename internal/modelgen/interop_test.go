package modelgen

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Tests with the external judges (onnxruntime, the ONNX checker). They skip
// where the judges are not installed (see internal/judge).

func saveModel(t *testing.T, m *pb.ModelProto) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := onnx.Save(m, path, onnx.SaveOptions{External: onnx.ExternalNever}); err != nil {
		t.Fatal(err)
	}
	return path
}

// sample returns B×T token ids below vocab, and a mask whose row 0 is
// left-padded by pad positions.
func sample(c Config, seed int64, B, T, pad int) refInput {
	r := newRNG(seed, "sample")
	in := refInput{ids: make([][]int64, B), mask: make([][]int64, B)}
	for b := range in.ids {
		in.ids[b] = make([]int64, T)
		in.mask[b] = make([]int64, T)
		for t := range in.ids[b] {
			in.ids[b][t] = int64(r.next() % uint64(c.defaults().Vocab))
			in.mask[b][t] = 1
			if b == 0 && t < pad {
				in.mask[b][t] = 0
			}
		}
	}
	return in
}

// columns returns columns [from, to) of rows.
func columns(rows [][]int64, from, to int) [][]int64 {
	out := make([][]int64, len(rows))
	for i, r := range rows {
		out[i] = r[from:to]
	}
	return out
}

// maskPositions returns the position ids of every column of in.mask (past and
// new positions) by the rule the graph applies without position_ids.
func maskPositions(c Config, in refInput) [][]int64 {
	return refModel{c: c}.positionsRef(refInput{ids: in.mask, mask: in.mask})
}

// feeds builds the model inputs for ids over a past of pastLen positions
// (past holds present.* of an earlier run, or nil for an empty past). The mask
// covers past and new positions; positions are the reference's.
func feeds(t *testing.T, c Config, in refInput, pastLen int, past map[string]*npy.Array) map[string]*npy.Array {
	t.Helper()
	c = c.defaults()
	f := map[string]*npy.Array{"input_ids": judge.IDs(t, in.ids)}
	if c.Arch == EncDec {
		f["decoder_input_ids"] = judge.IDs(t, columns(in.ids, 0, len(in.ids[0])-1))
		return f
	}
	if c.AttentionMask {
		f["attention_mask"] = judge.IDs(t, in.mask)
	}
	if c.PositionIDs {
		all := maskPositions(c, in)
		f["position_ids"] = judge.IDs(t, columns(all, pastLen, len(all[0])))
	}
	if c.KVCache {
		for i := 0; i < c.Layers; i++ {
			for _, s := range []string{"key", "value"} {
				name := fmt.Sprintf("past_key_values.%d.%s", i, s)
				if past != nil {
					f[name] = past[fmt.Sprintf("present.%d.%s", i, s)]
					continue
				}
				a, err := npy.New([]int{len(in.ids), c.KVHeads, 0, c.Hidden / c.Heads}, []float32{})
				if err != nil {
					t.Fatal(err)
				}
				f[name] = a
			}
		}
	}
	return f
}

func float32s(t *testing.T, a *npy.Array) []float32 {
	t.Helper()
	v, err := a.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// compareReference runs the model in onnxruntime and compares its logits with
// the float64 reference, skipping query positions that are padding.
func compareReference(t *testing.T, ort *judge.Runtime, path string, c Config, in refInput) {
	t.Helper()
	c = c.defaults()
	ref := refInput{ids: in.ids}
	if c.AttentionMask {
		ref.mask = in.mask
	}
	if c.PositionIDs {
		ref.pos = maskPositions(c, in)
	}
	out, err := ort.Run(path, feeds(t, c, in, 0, nil), []string{"logits"})
	if err != nil {
		t.Fatal(err)
	}
	got := float32s(t, out["logits"])
	want := refModel{c: c}.logits(ref)
	B, T := len(in.ids), len(in.ids[0])
	if fmt.Sprint(out["logits"].Shape) != fmt.Sprint([]int{B, T, c.Vocab}) {
		t.Fatalf("logits shape %v, want [%d %d %d]", out["logits"].Shape, B, T, c.Vocab)
	}
	var diff, scale float64
	for b := 0; b < B; b++ {
		for s := 0; s < T; s++ {
			if ref.mask != nil && ref.mask[b][s] == 0 {
				continue
			}
			for v := 0; v < c.Vocab; v++ {
				diff = math.Max(diff, math.Abs(float64(got[(b*T+s)*c.Vocab+v])-want[b][s][v]))
				scale = math.Max(scale, math.Abs(want[b][s][v]))
			}
		}
	}
	t.Logf("max |onnxruntime - reference| logits = %.3g (max |reference| %.3g)", diff, scale)
	if !(diff <= 1e-4*scale) {
		t.Errorf("max |onnxruntime - reference| logits = %.3g, want ≤ 1e-4 × %.3g", diff, scale)
	}
}

// judgeModel runs the checker (where it knows the opset) and onnxruntime, and
// compares with the reference where there is one.
func judgeModel(t *testing.T, path string, c Config) {
	t.Helper()
	c = c.defaults()
	if c.Opset <= 17 { // Debian's onnx 1.12 knows opsets up to 17
		t.Run("checker", func(t *testing.T) {
			if err := judge.Checker(t).Check(path); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("onnxruntime", func(t *testing.T) {
		ort := judge.ORT(t)
		switch c.Arch {
		case Llama, GPT2:
			pad := 0
			if c.AttentionMask {
				pad = 3
			}
			compareReference(t, ort, path, c, sample(c, c.Seed, 2, 11, pad))
		default:
			in := sample(c, c.Seed, 2, 7, 0)
			out, err := ort.Run(path, feeds(t, c, in, 0, nil), []string{"logits"})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range float32s(t, out["logits"]) {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("logits hold %v", v)
				}
			}
		}
	})
}

func TestJudgeFixtures(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "models")
	for _, f := range Fixtures() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			judgeModel(t, filepath.Join(dir, f.Name+".onnx"), f.Config)
		})
	}
}

// sweep covers every opset, alternating the architectures and switching the
// options on and off in turn.
func sweep() map[string]Config {
	out := map[string]Config{}
	for k := 13; k <= 21; k++ {
		c := Config{Arch: Llama, Layers: 2, Hidden: 16, Heads: 4, KVHeads: 2, Vocab: 48, MaxPos: 16, Opset: k, Seed: int64(k)}
		if k%2 == 0 {
			c.Arch, c.KVHeads = GPT2, 4
		}
		c.KVCache, c.AttentionMask, c.PositionIDs = k%4 < 2, k%3 != 0, k%5 < 2
		c.Float16, c.TransposedWeights = k%3 == 1, k%4 != 1
		c.TiedEmbeddings, c.DedupIdentity = k%4 >= 2, k%3 == 2
		out[fmt.Sprintf("%s_op%d", c.Arch, k)] = c
	}
	return out
}

func TestJudgeConfigs(t *testing.T) {
	all := configs()
	for _, f := range Fixtures() {
		delete(all, f.Name) // judged from the files by TestJudgeFixtures
	}
	if !testing.Short() {
		for name, c := range sweep() {
			all[name] = c
		}
	}
	for _, name := range sortedNames(all) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			judgeModel(t, saveModel(t, mustBuild(t, all[name])), all[name])
		})
	}
}

// TestJudgeKVCache: T tokens at once give the same last logits and presents
// as T-1 tokens followed by one token with the returned presents as past.
func TestJudgeKVCache(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "models")
	cs := configs()
	tests := []struct {
		name string
		path string
		c    Config
	}{
		{"tiny_llama_kv", filepath.Join(dir, "tiny_llama_kv.onnx"), cs["tiny_llama_kv"]},
		{"llama_kv_cumsum", "", cs["llama_kv_cumsum"]},
		{"gpt2_kv_op16", "", cs["gpt2_kv_op16"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ort := judge.ORT(t)
			path := tt.path
			if path == "" {
				path = saveModel(t, mustBuild(t, tt.c))
			}
			c := tt.c.defaults()
			const B, T = 2, 9
			pad := 0
			if c.AttentionMask {
				pad = 2
			}
			in := sample(c, 7, B, T, pad)
			full, err := ort.Run(path, feeds(t, c, in, 0, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			first := refInput{ids: columns(in.ids, 0, T-1), mask: columns(in.mask, 0, T-1)}
			past, err := ort.Run(path, feeds(t, c, first, 0, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			last := refInput{ids: columns(in.ids, T-1, T), mask: in.mask}
			step, err := ort.Run(path, feeds(t, c, last, T-1, past), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := step["present.0.key"].Shape; got[2] != T {
				t.Fatalf("present.0.key shape %v, want total length %d on axis 2", got, T)
			}
			fl, sl := float32s(t, full["logits"]), float32s(t, step["logits"])
			var diff float64
			for b := 0; b < B; b++ {
				for v := 0; v < c.Vocab; v++ {
					diff = math.Max(diff, math.Abs(float64(fl[(b*T+T-1)*c.Vocab+v]-sl[b*c.Vocab+v])))
				}
			}
			t.Logf("last-position logits: max |full - cached| = %.3g", diff)
			if diff > 1e-4 {
				t.Errorf("last-position logits: max |full - cached| = %.3g, want ≤ 1e-4", diff)
			}
			// Presents agree except at padded positions, whose values are
			// unspecified (their queries attend to nothing).
			hd := c.Hidden / c.Heads
			for name, a := range full {
				if name == "logits" {
					continue
				}
				fa, sa := float32s(t, a), float32s(t, step[name])
				if len(fa) != len(sa) || len(fa) != B*c.KVHeads*T*hd {
					t.Fatalf("%s: %d values in the full run, %d in the cached one, want %d", name, len(fa), len(sa), B*c.KVHeads*T*hd)
				}
				for i := range fa {
					b, s := i/(c.KVHeads*T*hd), i/hd%T
					if in.mask[b][s] == 0 {
						continue
					}
					if d := math.Abs(float64(fa[i] - sa[i])); d > 1e-4 {
						t.Fatalf("%s[%d]: full %g, cached %g", name, i, fa[i], sa[i])
					}
				}
			}
		})
	}
}
