package modelgen

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/rowmajor"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/runtime"
)

// gqaConfigs are small Llamas with grouped-query attention in each weight
// storage, shaped so that most projections pass onnx.DefaultMinExternalBytes.
func gqaConfigs() map[string]Config {
	base := Config{Arch: Llama, Layers: 3, Hidden: 64, Heads: 8, KVHeads: 2, FFN: 96, Vocab: 300, Seed: 7}
	fp16, bf16, folded, kv := base, base, base, base
	fp16.Float16 = true
	bf16.BFloat16 = true
	folded.TransposedWeights, folded.TiedEmbeddings, folded.Float16 = true, true, true
	kv.KVCache, kv.AttentionMask, kv.BFloat16, kv.KVHeads = true, true, true, 4
	return map[string]Config{"float32": base, "float16": fp16, "bfloat16": bf16, "folded_tied_fp16": folded, "kv_cache_bf16": kv}
}

// Stream must write the bytes that Build followed by onnx.Save with
// ExternalAlways writes: the same model file and the same data file.
func TestStreamMatchesSave(t *testing.T) {
	cfgs := gqaConfigs()
	cfgs["gpt2"] = Config{Arch: GPT2, Layers: 2, Hidden: 32, Heads: 4, Vocab: 300, Float16: true}
	for name, c := range cfgs {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			streamed := filepath.Join(dir, "s.onnx")
			if err := Stream(c, streamed); err != nil {
				t.Fatal(err)
			}
			m, err := Build(c)
			if err != nil {
				t.Fatal(err)
			}
			saved := filepath.Join(dir, "m.onnx")
			// Same base name for the data file: the location is inside the model.
			if err := onnx.Save(m, saved, onnx.SaveOptions{External: onnx.ExternalAlways, DataFile: "s.onnx.data"}); err != nil {
				t.Fatal(err)
			}
			for _, pair := range [][2]string{{streamed, saved}, {streamed + ".data", filepath.Join(dir, "s.onnx.data")}} {
				a, err := os.ReadFile(pair[0])
				if err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(pair[1])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(a, b) {
					t.Errorf("%s (%d bytes) differs from onnx.Save's %s (%d bytes)", filepath.Base(pair[0]), len(a), filepath.Base(pair[1]), len(b))
				}
			}
			sv, err := os.Stat(saved)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{streamed, streamed + ".data"} {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != sv.Mode().Perm() {
					t.Errorf("%s has mode %v, onnx.Save's model %v", filepath.Base(f), st.Mode().Perm(), sv.Mode().Perm())
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 3 {
				t.Errorf("folder holds %d files, want the model, onnx.Save's model and one data file (no temporaries)", len(entries))
			}
		})
	}
}

// The sizes the issue asks for pass Stream's limit and not Build's.
func TestStreamScaleShapes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      Config
		params int64
	}{
		{"tinyllama_1.26B", Config{Arch: Llama, Layers: 22, Hidden: 2048, Heads: 32, FFN: 5632, Vocab: 32000, Float16: true}, 1_261_529_088},
		{"tinyllama_gqa", Config{Arch: Llama, Layers: 22, Hidden: 2048, Heads: 32, KVHeads: 4, FFN: 5632, Vocab: 32000, BFloat16: true}, 1_100_048_384},
		{"7b_11008", Config{Arch: Llama, Layers: 32, Hidden: 4096, Heads: 32, KVHeads: 8, FFN: 11008, Vocab: 32000, Float16: true}, 5_933_109_248},
		{"7b_14336", Config{Arch: Llama, Layers: 32, Hidden: 4096, Heads: 32, KVHeads: 8, FFN: 14336, Vocab: 32000, Float16: true}, 7_241_732_096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c.defaults()
			if err := c.validateMax(maxStreamParams); err != nil {
				t.Errorf("Stream's limit: %v", err)
			}
			if _, err := Build(tc.c); !errors.Is(err, ErrConfig) {
				t.Errorf("Build: err = %v, want ErrConfig (too large to build in memory)", err)
			}
			if got := llamaParams(c); got != tc.params {
				t.Errorf("parameters = %d, want %d", got, tc.params)
			}
		})
	}
	if err := Stream(Config{Arch: Llama, Layers: 1, Hidden: 8, Heads: 2, Float16: true, BFloat16: true}, filepath.Join(t.TempDir(), "m.onnx")); !errors.Is(err, ErrConfig) {
		t.Errorf("Float16 and BFloat16 together: err = %v, want ErrConfig", err)
	}
}

// llamaParams counts the parameters of an untied Llama from its shape.
func llamaParams(c Config) int64 {
	d, hd := int64(c.Hidden), int64(c.Hidden/c.Heads)
	kv := int64(c.KVHeads) * hd
	layer := 2*d*d + 2*d*kv + 3*d*int64(c.FFN) + 2*d
	return int64(c.Layers)*layer + 2*int64(c.Vocab)*d + d
}

// A streamed model's initializers hold exactly the parameters llamaParams
// counts (the shape formula above is the one the figures use).
func TestStreamParamCount(t *testing.T) {
	c := gqaConfigs()["float16"]
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := Stream(c, path); err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var n int64
	for _, init := range m.Proto.Graph.Initializer {
		k, err := onnx.NumElements(init.GetDims())
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	if want := llamaParams(c.defaults()); n != want {
		t.Errorf("%d parameters in initializers, want %d", n, want)
	}
}

func TestStreamErrors(t *testing.T) {
	dir := t.TempDir()
	if err := Stream(gqaConfigs()["float16"], filepath.Join(dir, "missing", "m.onnx")); err == nil {
		t.Error("Stream into a missing folder: no error")
	}
	if err := Stream(Config{Arch: Llama, Layers: 1, Hidden: 6, Heads: 4}, filepath.Join(dir, "m.onnx")); !errors.Is(err, ErrConfig) {
		t.Errorf("bad config: err = %v, want ErrConfig", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed Streams left %d files behind", len(entries))
	}
}

// The Go runtime and onnxruntime agree on streamed GQA models in every
// weight storage, loaded from their external data.
func TestStreamRuntimeMatchesORT(t *testing.T) {
	ort := judge.ORT(t)
	for name, c := range gqaConfigs() {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.onnx")
			if err := Stream(c, path); err != nil {
				t.Fatal(err)
			}
			in := sample(c, 3, 2, 9, 0)
			want, err := ort.Run(path, feeds(t, c, in, 0, nil), []string{"logits"})
			if err != nil {
				t.Fatal(err)
			}
			m, err := onnx.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			s, err := runtime.New(m.Proto, runtime.Options{})
			if err != nil {
				t.Fatal(err)
			}
			rf := map[string]*runtime.Tensor{}
			for k, a := range feeds(t, c, in, 0, nil) {
				x, err := runtime.FromSlice(a.Shape, a.Data)
				if err != nil {
					t.Fatal(err)
				}
				rf[k] = x
			}
			out, err := s.Run(rf, []string{"logits"})
			if err != nil {
				t.Fatal(err)
			}
			got, exp := out["logits"].Float32Data(), float32s(t, want["logits"])
			if len(got) != len(exp) || len(exp) == 0 {
				t.Fatalf("%d logits from the runtime, %d from onnxruntime", len(got), len(exp))
			}
			diff, scale := stats.MaxAbsDiff(got, exp), stats.MaxAbs(exp)
			t.Logf("max |runtime - onnxruntime| = %.3g (max |logit| %.3g)", diff, scale)
			if !(diff <= 1e-4*scale) {
				t.Errorf("max |runtime - onnxruntime| = %.3g, want ≤ 1e-4 × %.3g", diff, scale)
			}
		})
	}
}

// normalAt and normalsT give exactly the values of drawing the stream in
// order (Stream relies on it to skip the untransposed copy).
func TestNormalAtMatchesStream(t *testing.T) {
	for _, tc := range []struct {
		key        string
		rows, cols int
	}{{"a", 1, 1}, {"model.layers.0.mlp.up_proj.weight", 7, 13}, {"lm_head.weight", 32, 3}} {
		r := newRNG(5, tc.key)
		ref := newRNG(5, tc.key)
		for i := 0; i < tc.rows*tc.cols; i++ {
			if got, want := r.normalAt(i), ref.normal(); math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("%s: normalAt(%d) = %v, stream gives %v", tc.key, i, got, want)
			}
		}
		got := normalsT(5, tc.key, tc.rows, tc.cols, 0.3)
		want := rowmajor.Transpose(normals(5, tc.key, tc.rows*tc.cols, 0, 0.3), tc.rows, tc.cols)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: normalsT[%d] = %v, want %v", tc.key, i, got[i], want[i])
			}
		}
	}
}
