package main

// Interop: what the CLI writes is accepted by the tools that consume ONNX. Every
// kind of file onnxslm writes (pruned inline, pruned with external data,
// converted, a pruned KV-cache model) passes the ONNX checker and runs in
// onnxruntime; the pruned model's logits in onnxruntime match the Go runtime's.
// The judges (internal/judge) skip these tests where they are not installed
// and fail them under CI=true.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/internal/testsession"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// interopTol is the largest difference allowed between onnxruntime's and the
// Go runtime's logits, relative to the largest logit.
const interopTol = 1e-4

// tokenRows returns rows×cols token ids below vocab, spread over the range.
func tokenRows(rows, cols, vocab int) [][]int64 {
	ids := make([][]int64, rows)
	for r := range ids {
		ids[r] = make([]int64, cols)
		for c := range ids[r] {
			ids[r][c] = int64((r*97 + c*31 + 5) % vocab)
		}
	}
	return ids
}

// relDiff is max|a-b| / max|b| (stats.RelMax, +Inf for a NaN).
func relDiff(t *testing.T, a, b []float32) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d values vs %d", len(a), len(b))
	}
	return stats.RelMax(a, b)
}

// goRun runs the model file at path (loaded as the CLI loads it) in the Go
// runtime on feeds and returns the named output.
func goRun(t *testing.T, path string, feeds map[string]*npy.Array, output string) *runtime.Tensor {
	t.Helper()
	sess := testsession.Open(t, path)
	in := map[string]*runtime.Tensor{}
	for name, a := range feeds {
		x, err := runtime.FromSlice(a.Shape, a.Data)
		if err != nil {
			t.Fatalf("feed %s: %v", name, err)
		}
		in[name] = x
	}
	out, err := sess.Run(in, []string{output})
	if err != nil {
		t.Fatalf("Go runtime on %s: %v", path, err)
	}
	return out[output]
}

// checkModel fails when the checker refuses path, and skips (fails under
// CI=true) when the installed checker is too old to judge it.
func checkModel(t *testing.T, chk *judge.Check, path string) {
	t.Helper()
	chk.Valid(t, path)
}

// TestInteropWrittenModels: the files prune and convert write pass the checker
// and run in onnxruntime; a pruned model gives the Go runtime's logits, and a
// converted one gives bit for bit what the original gives in onnxruntime.
func TestInteropWrittenModels(t *testing.T) {
	ort := judge.ORT(t)
	chk := judge.Checker(t)
	dir := t.TempDir()
	models := filepath.Join("..", "..", "testdata", "models")

	// The original built-in model as a file, the reference for converts.
	orig := filepath.Join(dir, "orig.onnx")
	if code, _, stderr := runCLI(t, "convert", "builtin:llama8", orig); code != 0 {
		t.Fatalf("write the built-in model: exit %d: %s", code, stderr)
	}
	cases := []struct {
		name    string
		args    []string // OUT is appended
		prune   bool
		files   []string // what must exist beside OUT (besides OUT)
		vocab   int
		compare string // for converts: the model whose ORT logits must be identical
		slow    bool
	}{
		{name: "pruned inline (slm)", args: []string{"prune", "-q", "--method", "slm", "builtin:llama8"}, prune: true, vocab: 256},
		{name: "pruned external (slm)", args: []string{"prune", "-q", "--method", "slm", "--external-data", "--layers", "5", "builtin:llama8"}, prune: true, files: []string{".data"}, vocab: 256},
		{name: "pruned default method", args: []string{"prune", "-q", "builtin:llama8"}, prune: true, vocab: 256, slow: true},
		{name: "pruned default method external", args: []string{"prune", "-q", "--external-data", "--layers", "5", "builtin:llama8"}, prune: true, files: []string{".data"}, vocab: 256, slow: true},
		{name: "pruned merge code", args: []string{"prune", "-q", "--method", "slm", "--merge", "code", "--layers", "6", "builtin:llama8"}, prune: true, vocab: 256, slow: true},
		{name: "pruned shortgpt", args: []string{"prune", "-q", "--method", "shortgpt", "--layers", "6", "builtin:llama8"}, prune: true, vocab: 256, slow: true},
		{name: "pruned tiny_gpt2", args: []string{"prune", "-q", "--layers", "2", filepath.Join(models, "tiny_gpt2.onnx")}, prune: true, vocab: 256},
		{name: "pruned tiny_llama_alt", args: []string{"prune", "-q", "--layers", "3", filepath.Join(models, "tiny_llama_alt.onnx")}, prune: true, vocab: 256, slow: true},
		{name: "pruned tiny_llama_fp16", args: []string{"prune", "-q", "--layers", "3", filepath.Join(models, "tiny_llama_fp16.onnx")}, prune: true, vocab: 256, slow: true},
		{name: "converted external", args: []string{"convert", "--external-data", orig}, files: []string{".data"}, vocab: 256, compare: orig},
		{name: "converted back inline", args: []string{"convert", "--inline"}, vocab: 256, compare: orig, slow: true},
	}
	var lastExternal string
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.slow && testing.Short() {
				t.Skip("more of the same kind; skipped with -short")
			}
			// Under the test's folder, not the subtest's: the next case reads it.
			sub := filepath.Join(dir, fmt.Sprint(i))
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(sub, "out.onnx")
			args := slices.Clone(c.args)
			if c.name == "converted back inline" {
				if lastExternal == "" {
					t.Skip("converted external did not run")
				}
				args = append(args, lastExternal)
			}
			args = append(args, out)
			if code, _, stderr := runCLI(t, args...); code != 0 {
				t.Fatalf("onnxslm %v: exit %d: %s", args, code, stderr)
			}
			want := []string{"out.onnx"}
			for _, suffix := range c.files {
				want = append(want, "out.onnx"+suffix)
			}
			sort.Strings(want)
			if got := testenv.DirNames(t, sub); !slices.Equal(got, want) {
				t.Errorf("wrote %v, want %v", got, want)
			}
			if c.name == "converted external" {
				lastExternal = out
			}
			checkModel(t, chk, out)

			feeds := map[string]*npy.Array{"input_ids": judge.IDs(t, tokenRows(2, 24, c.vocab))}
			res, err := ort.Run(out, feeds, []string{"logits"})
			if err != nil {
				t.Fatalf("onnxruntime: %v", err)
			}
			got := res["logits"]
			if c.compare != "" {
				ref, err := ort.Run(c.compare, feeds, []string{"logits"})
				if err != nil {
					t.Fatalf("onnxruntime on the original: %v", err)
				}
				if !slices.Equal(got.Data.([]float32), ref["logits"].Data.([]float32)) {
					t.Errorf("onnxruntime logits of the converted model differ from the original's (max rel diff %g)",
						relDiff(t, got.Data.([]float32), ref["logits"].Data.([]float32)))
				}
				return
			}
			goOut := goRun(t, out, feeds, "logits")
			if !slices.Equal(goOut.Shape(), got.Shape) {
				t.Fatalf("logits shape: Go %v, onnxruntime %v", goOut.Shape(), got.Shape)
			}
			if d := relDiff(t, goOut.Float32Data(), got.Data.([]float32)); d > interopTol {
				t.Errorf("Go runtime and onnxruntime logits differ by %g of the largest logit, want at most %g", d, interopTol)
			}
		})
	}
}

var kvName = regexp.MustCompile(`^(past_key_values|present)\.(\d+)\.(key|value)$`)

// kvIndices returns, for prefix, the layer numbers of the key and value
// tensors among vis, sorted, and checks that every layer has both.
func kvIndices(t *testing.T, vis []*pb.ValueInfoProto, prefix string) []int {
	t.Helper()
	kinds := map[int][]string{}
	for _, vi := range vis {
		m := kvName.FindStringSubmatch(vi.GetName())
		if m == nil || m[1] != prefix {
			continue
		}
		var i int
		fmt.Sscan(m[2], &i)
		kinds[i] = append(kinds[i], m[3])
	}
	var idx []int
	for i, k := range kinds {
		slices.Sort(k)
		if !slices.Equal(k, []string{"key", "value"}) {
			t.Errorf("%s.%d has %v, want key and value", prefix, i, k)
		}
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return idx
}

// kvShape returns the static dims 1 and 3 (kv heads, head size) of the model
// input name.
func kvShape(t *testing.T, m *pb.ModelProto, name string) (heads, size int) {
	t.Helper()
	for _, vi := range m.Graph.Input {
		if vi.GetName() == name {
			d := vi.GetType().GetTensorType().GetShape().GetDim()
			if len(d) != 4 || d[1].GetDimValue() == 0 || d[3].GetDimValue() == 0 {
				t.Fatalf("%s: shape %v, want [batch, heads, past, size] with static heads and size", name, d)
			}
			return int(d[1].GetDimValue()), int(d[3].GetDimValue())
		}
	}
	t.Fatalf("model has no input %s", name)
	return 0, 0
}

// kvFeeds builds the inputs for ids continuing a past of pastLen positions
// (past holds present.* of an earlier run; nil for an empty past).
func kvFeeds(t *testing.T, m *pb.ModelProto, layers []int, ids []int64, pastLen int, past map[string]*npy.Array) map[string]*npy.Array {
	t.Helper()
	total := pastLen + len(ids)
	mask := make([]int64, total)
	for i := range mask {
		mask[i] = 1
	}
	pos := make([]int64, len(ids))
	for i := range pos {
		pos[i] = int64(pastLen + i)
	}
	f := map[string]*npy.Array{
		"input_ids":      judge.IDs(t, [][]int64{ids}),
		"attention_mask": judge.IDs(t, [][]int64{mask}),
		"position_ids":   judge.IDs(t, [][]int64{pos}),
	}
	for _, i := range layers {
		for _, kind := range []string{"key", "value"} {
			name := fmt.Sprintf("past_key_values.%d.%s", i, kind)
			if past != nil {
				f[name] = past[fmt.Sprintf("present.%d.%s", i, kind)]
				continue
			}
			heads, size := kvShape(t, m, name)
			a, err := npy.New([]int{1, heads, 0, size}, []float32{})
			if err != nil {
				t.Fatal(err)
			}
			f[name] = a
		}
	}
	return f
}

// TestInteropKVCache: the KV-cache fixture pruned with --layers keeps a
// consistent cache interface (past_key_values.i / present.i renumbered
// 0..L'-1) and keeps running in onnxruntime with a non-empty past: a prompt
// fed in two steps, the second with the first's presents as past, gives the
// logits of the whole prompt fed at once, and those match the Go runtime's.
func TestInteropKVCache(t *testing.T) {
	ort := judge.ORT(t)
	chk := judge.Checker(t)
	in := filepath.Join("..", "..", "testdata", "models", "tiny_llama_kv.onnx")
	const keep = 2
	for _, flags := range [][]string{
		{"--layers", fmt.Sprint(keep)}, // the default method
		{"--layers", fmt.Sprint(keep), "--method", "slm", "--external-data"},
		{"--layers", fmt.Sprint(keep), "--method", "shortgpt"},
	} {
		t.Run(fmt.Sprint(flags), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "kv.onnx")
			args := append([]string{"prune", "-q", in, out}, flags...)
			if code, _, stderr := runCLI(t, args...); code != 0 {
				t.Fatalf("onnxslm %v: exit %d: %s", args, code, stderr)
			}
			checkModel(t, chk, out)
			m := testmodel.Load(t, out)
			want := make([]int, keep)
			for i := range want {
				want[i] = i
			}
			past := kvIndices(t, m.Proto.Graph.Input, "past_key_values")
			present := kvIndices(t, m.Proto.Graph.Output, "present")
			if !slices.Equal(past, want) || !slices.Equal(present, want) {
				t.Fatalf("past_key_values layers %v, present layers %v; want both %v", past, present, want)
			}

			prompt := tokenRows(1, 9, 256)[0]
			const split = 6
			full, err := ort.Run(out, kvFeeds(t, m.Proto, want, prompt, 0, nil), nil)
			if err != nil {
				t.Fatalf("onnxruntime, whole prompt: %v", err)
			}
			first, err := ort.Run(out, kvFeeds(t, m.Proto, want, prompt[:split], 0, nil), nil)
			if err != nil {
				t.Fatalf("onnxruntime, first part: %v", err)
			}
			for _, i := range want {
				if got := first[fmt.Sprintf("present.%d.key", i)].Shape; len(got) != 4 || got[2] != split {
					t.Fatalf("present.%d.key shape %v, want %d positions on axis 2", i, got, split)
				}
			}
			second, err := ort.Run(out, kvFeeds(t, m.Proto, want, prompt[split:], split, first), nil)
			if err != nil {
				t.Fatalf("onnxruntime with a past of %d positions: %v", split, err)
			}
			// The last len-split positions of the whole prompt's logits.
			fl := full["logits"]
			vocab := fl.Shape[2]
			tail := fl.Data.([]float32)[split*vocab:]
			if d := relDiff(t, second["logits"].Data.([]float32), tail); d > interopTol {
				t.Errorf("logits with the cache differ from the whole prompt's by %g of the largest logit", d)
			}
			for _, i := range want {
				name := fmt.Sprintf("present.%d.key", i)
				if got := second[name].Shape; got[2] != len(prompt) {
					t.Errorf("%s after the second step: shape %v, want %d positions", name, got, len(prompt))
				}
			}
			goOut := goRun(t, out, kvFeeds(t, m.Proto, want, prompt, 0, nil), "logits")
			if d := relDiff(t, goOut.Float32Data(), fl.Data.([]float32)); d > interopTol {
				t.Errorf("Go runtime and onnxruntime logits differ by %g of the largest logit", d)
			}
		})
	}
}
