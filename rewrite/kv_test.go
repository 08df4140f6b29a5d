package rewrite_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/slm"
)

func ioNames(vis []*pb.ValueInfoProto) []string {
	var names []string
	for _, v := range vis {
		names = append(names, v.GetName())
	}
	return names
}

func kvNames(prefix string, layers []int, kinds ...string) []string {
	var names []string
	for _, i := range layers {
		for _, k := range kinds {
			names = append(names, fmt.Sprintf("%s.%d.%s", prefix, i, k))
		}
	}
	return names
}

// TestKVCacheInterfaceAfterMerge: the past/present inputs and outputs of removed
// layers go, the others are renumbered 0..L'−1 (or keep their numbers).
func TestKVCacheInterfaceAfterMerge(t *testing.T) {
	m, s := testmodel.Generated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 5, Hidden: 16, Heads: 4, KVHeads: 2, KVCache: true, AttentionMask: true})
	plan := rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}}, Remove: []int{0}}
	for _, keep := range []bool{false, true} {
		res, err := rewrite.Merge(m, s, plan, rewrite.Options{Check: true, KeepKVNumbers: keep})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.KeptFrom, []int{1, 3, 4}) {
			t.Errorf("kept from %v, want [1 3 4]", res.KeptFrom)
		}
		nums := []int{0, 1, 2}
		if keep {
			nums = res.KeptFrom
		}
		wantIn := append([]string{"input_ids", "attention_mask"}, kvNames("past_key_values", nums, "key", "value")...)
		wantOut := append([]string{"logits"}, kvNames("present", nums, "key", "value")...)
		if got := ioNames(res.Model.Graph.Input); !slices.Equal(got, wantIn) {
			t.Errorf("keep=%v: inputs %v, want %v", keep, got, wantIn)
		}
		if got := ioNames(res.Model.Graph.Output); !slices.Equal(got, wantOut) {
			t.Errorf("keep=%v: outputs %v, want %v", keep, got, wantOut)
		}
		if !keep && res.Renamed["present.4.value"] != "present.2.value" {
			t.Errorf("renamed %v: want present.4.value -> present.2.value", res.Renamed)
		}
		s2, err := discover.Find(res.Model)
		if err != nil {
			t.Fatalf("rewritten model: %v", err)
		}
		if s2.NumLayers() != 3 {
			t.Errorf("rewritten model has %d layers, want 3", s2.NumLayers())
		}
	}
}

// TestKVCacheMergeRunsInORT: a merged KV-cache model runs in onnxruntime with a
// non-empty past, and decoding two tokens with the cache gives the logits of
// running them with the whole prefix.
func TestKVCacheMergeRunsInORT(t *testing.T) {
	ort := judge.ORT(t)
	checker := judge.Checker(t)
	for _, c := range []modelgen.Config{
		{Arch: modelgen.Llama, Layers: 5, Hidden: 16, Heads: 4, KVHeads: 2, KVCache: true, AttentionMask: true, MaxPos: 32},
		{Arch: modelgen.GPT2, Layers: 4, Hidden: 16, Heads: 4, KVCache: true, AttentionMask: true, MaxPos: 32},
	} {
		t.Run(c.Arch, func(t *testing.T) {
			m, s := testmodel.Generated(t, c)
			res, err := rewrite.Merge(m, s, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}}, Remove: []int{0}},
				rewrite.Options{Check: true})
			if err != nil {
				t.Fatal(err)
			}
			cachedDecoding(t, ort, checker, res.Model)
			if got := ioNames(res.Model.Graph.Output); !strings.HasPrefix(strings.Join(got, " "), "logits present.0.") || len(got) != 1+2*len(res.KeptFrom) {
				t.Errorf("outputs %v", got)
			}
		})
	}
}

// cachedDecoding saves m, a KV-cache model, checks it with the ONNX
// checker, runs it in onnxruntime with a random non-empty past of the shapes
// it declares, and checks that decoding two tokens with the cache gives the
// logits of running them with the whole prefix.
func cachedDecoding(t *testing.T, ort *judge.Runtime, checker *judge.Check, m *pb.ModelProto) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kv.onnx")
	if err := onnx.Save(m, path, onnx.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := checker.Check(path); err != nil {
		t.Errorf("ONNX checker: %v", err)
	}
	s2, err := discover.Find(m)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const past, first, second = 3, 3, 2
	ids := []int64{5, 9, 2, 7, 11}
	feeds := func(tokens []int64, pastLen int, pasts map[string]*npy.Array) map[string]*npy.Array {
		f := map[string]*npy.Array{}
		f["input_ids"] = must(npy.New([]int{1, len(tokens)}, tokens))
		mask := make([]int64, pastLen+len(tokens))
		for i := range mask {
			mask[i] = 1
		}
		f["attention_mask"] = must(npy.New([]int{1, len(mask)}, mask))
		for k, v := range pasts {
			f[k] = v
		}
		return f
	}
	// A random past of 3 positions for every kept layer.
	pasts := map[string]*npy.Array{}
	for _, l := range s2.Layers {
		for _, name := range l.Past {
			pasts[name] = testmodel.RandomPast(t, m, name, past, r)
		}
	}
	full, err := ort.Run(path, feeds(ids, past, pasts), nil)
	if err != nil {
		t.Fatal(err)
	}
	step1, err := ort.Run(path, feeds(ids[:first], past, pasts), nil)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]*npy.Array{}
	for _, l := range s2.Layers {
		for j, name := range l.Past {
			next[name] = step1[l.Present[j]]
			if got := step1[l.Present[j]].Shape[2]; got != past+first {
				t.Fatalf("%s has %d positions, want %d", l.Present[j], got, past+first)
			}
		}
	}
	step2, err := ort.Run(path, feeds(ids[first:], past+first, next), nil)
	if err != nil {
		t.Fatal(err)
	}
	fl, _ := full[s2.Logits].Float32s()
	sl, _ := step2[s2.Logits].Float32s()
	V := full[s2.Logits].Shape[2]
	if len(sl) != second*V {
		t.Fatalf("step 2 logits %v", step2[s2.Logits].Shape)
	}
	maxDiff := stats.MaxAbsDiff(fl[first*V:], sl)
	if maxDiff > 1e-4 {
		t.Errorf("cached decoding differs from the full run by %g", maxDiff)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
