package runtime_test

import (
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// halfModel builds a float16 model with modelgen; bf16 re-stores each float16
// initializer as bfloat16 (its float32 values rounded to bfloat16).
func halfModel(t testing.TB, cfg modelgen.Config, bf16 bool) *pb.ModelProto {
	t.Helper()
	cfg.Float16 = true
	m, err := modelgen.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bf16 {
		return m
	}
	for i, tp := range m.Graph.Initializer {
		if pb.TensorProto_DataType(tp.GetDataType()) != pb.TensorProto_FLOAT16 {
			continue
		}
		v, err := onnx.Float32s(tp)
		if err != nil {
			t.Fatal(err)
		}
		bits := make([]uint16, len(v))
		for j, f := range v {
			bits[j] = onnx.Float32ToBFloat16(f)
		}
		nt, err := onnx.EncodeTensor(tp.GetName(), &onnx.Tensor{DType: pb.TensorProto_BFLOAT16, Dims: tp.GetDims(), Data: bits})
		if err != nil {
			t.Fatal(err)
		}
		m.Graph.Initializer[i] = nt
	}
	return m
}

// widenedCopy is m with every float16/bfloat16 initializer widened to float32
// offline (what the runtime did before it kept weights as stored).
func widenedCopy(t testing.TB, m *pb.ModelProto) *pb.ModelProto {
	t.Helper()
	w := proto.Clone(m).(*pb.ModelProto)
	for i, tp := range w.Graph.Initializer {
		switch pb.TensorProto_DataType(tp.GetDataType()) {
		case pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
			v, err := onnx.Float32s(tp)
			if err != nil {
				t.Fatal(err)
			}
			w.Graph.Initializer[i] = onnx.NewFloat32(tp.GetName(), tp.GetDims(), v)
		}
	}
	return w
}

func randomIDs(t testing.TB, rows, cols, vocab int, seed uint64) *runtime.Tensor {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	ids := make([]int64, rows*cols)
	for i := range ids {
		ids[i] = int64(r.IntN(vocab))
	}
	x, err := runtime.NewInt64([]int{rows, cols}, ids)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestHalfWeightsBitwise: a model whose weights are kept in float16 or
// bfloat16 gives logits bitwise equal to the same model with its weights
// widened to float32 offline, on the first (unfused) and later (fused) Runs,
// on one and three threads, for the layouts the exporters write (PyTorch
// [out, in] weights behind Transpose, folded [in, out] weights, tied
// embeddings read through Transpose, GPT-2's Conv1D with biases, shared
// norm weights behind Identity).
func TestHalfWeightsBitwise(t *testing.T) {
	base := modelgen.Config{Arch: modelgen.Llama, Layers: 2, Hidden: 64, Heads: 4, FFN: 96, Vocab: 300, Seed: 5}
	variants := map[string]func(c *modelgen.Config){
		"llama":            func(c *modelgen.Config) {},
		"llama_folded":     func(c *modelgen.Config) { c.TransposedWeights = true },
		"llama_tied":       func(c *modelgen.Config) { c.TiedEmbeddings = true },
		"llama_gqa_dedup":  func(c *modelgen.Config) { c.KVHeads, c.DedupIdentity = 2, true },
		"gpt2":             func(c *modelgen.Config) { c.Arch = modelgen.GPT2 },
		"gpt2_tied_folded": func(c *modelgen.Config) { c.Arch, c.TiedEmbeddings, c.TransposedWeights = modelgen.GPT2, true, true },
	}
	for name, edit := range variants {
		for _, bf16 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/bf16=%v", name, bf16), func(t *testing.T) {
				cfg := base
				edit(&cfg)
				m := halfModel(t, cfg, bf16)
				wide := widenedCopy(t, m)
				feeds := map[string]*runtime.Tensor{"input_ids": randomIDs(t, 2, 13, cfg.Vocab, 1)}
				_, want := newRun(t, wide, runtime.Options{Threads: 1}, feeds)
				for _, threads := range []int{1, 3} {
					s, err := runtime.New(m, runtime.Options{Threads: threads})
					if err != nil {
						t.Fatal(err)
					}
					if err := runtime.RunsAgree(s, feeds, nil, &want); err != nil {
						t.Fatalf("threads=%d: %v", threads, err)
					}
				}
			})
		}
	}
}

// TestHalfWeightsNotWidened: a float16 model with large weights runs without
// a float32 copy of its weights. The heap after New and two Runs (unfused and
// fused), with the session alive, grows by well under the weights' float16
// bytes (a float32 copy would be twice them); New and the first Run allocate
// less than the float16 bytes in all (what they allocate is activations and
// the matmul's packing buffers, a few MB whatever the model's size), and a
// later Run less than half the largest weight's float32 bytes (no
// weight widened whole even for a moment). Two collections before each
// measure empty the sync.Pools.
func TestHalfWeightsNotWidened(t *testing.T) {
	cfg := modelgen.Config{Arch: modelgen.Llama, Layers: 2, Hidden: 512, Heads: 8, FFN: 2048, Vocab: 8000, Seed: 3}
	m := halfModel(t, cfg, false)
	half := runtime.WeightBytes(m) // 2 bytes a parameter
	largest := int64(4 * cfg.Vocab * cfg.Hidden)
	feeds := map[string]*runtime.Tensor{"input_ids": randomIDs(t, 1, 16, cfg.Vocab, 2)}
	var before, first, after goruntime.MemStats
	goruntime.GC()
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	s, _ := newRun(t, m, runtime.Options{Threads: 2}, feeds)
	goruntime.ReadMemStats(&first)
	out, err := s.Run(feeds, nil)
	if err != nil {
		t.Fatal(err)
	}
	goruntime.ReadMemStats(&after)
	later := int64(after.TotalAlloc - first.TotalAlloc)
	goruntime.GC()
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	firstAlloc := int64(first.TotalAlloc - before.TotalAlloc)
	t.Logf("weights %d bytes as float16; heap grew %d bytes; New and the first Run allocated %d bytes, the second Run %d", half, grown, firstAlloc, later)
	if grown > half/4 {
		t.Errorf("heap grew by %d bytes with %d bytes of float16 weights: the weights were widened", grown, half)
	}
	if firstAlloc > half {
		t.Errorf("New and the first Run allocated %d bytes with %d bytes of float16 weights: weights were widened on the way", firstAlloc, half)
	}
	// Half the largest weight's float32 bytes: a Run's own allocations
	// (packing buffers of the workers that took a task, which the pools
	// miss more often on a loaded machine) measured 0.7-5.4 MB at load 15;
	// the largest weight widened whole is 16 MB.
	if later > largest/2 {
		t.Errorf("the second Run allocated %d bytes, the largest weight is %d bytes in float32: a weight was widened whole", later, largest)
	}
	goruntime.KeepAlive(s)
	goruntime.KeepAlive(out)
}
