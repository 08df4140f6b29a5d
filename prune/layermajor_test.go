package prune

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/rusage"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/slm"
)

// layerMajorModel is a model the layer-major runs are checked on, with the
// token rows to calibrate it on.
type layerMajorModel struct {
	name string
	m    *pb.ModelProto
	rows [][]int64
}

// layerMajorModels are the models the layer-major runs are checked on: the
// shared exports and a generated Llama with a KV cache, attention mask and
// position ids (inputs a layer reads besides the stream).
func layerMajorModels(t *testing.T) []layerMajorModel {
	var out []layerMajorModel
	for _, name := range []string{"llama8", "gpt2_6"} {
		fx := load(t, name)
		out = append(out, layerMajorModel{name, fx.model, fx.calib[:6]})
	}
	kv, err := modelgen.Build(modelgen.Config{Arch: modelgen.Llama, Layers: 5, Hidden: 32, Heads: 4, KVHeads: 2, FFN: 40, Vocab: 256,
		KVCache: true, AttentionMask: true, PositionIDs: true, Opset: 17, Seed: 2, TransposedWeights: true})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, layerMajorModel{"llama_kv", kv, randomRows(6, 24, 4)})
	// The genai builder's fused residual adds: each boundary is h_i and the
	// branch not yet added (Stack.Branch), fed and fetched together.
	for _, p := range []string{modelgen.GenAIFP32, modelgen.GenAIInt4} {
		m, _, err := modelgen.BuildGenAI(modelgen.GenAIConfig{Layers: 5, Hidden: 64, Heads: 4, KVHeads: 2, Seed: 2, Precision: p})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, layerMajorModel{"genai_" + p, m, randomRows(6, 24, 4)})
	}
	return out
}

// sameValues reports the largest difference between a and b relative to
// b's largest magnitude, and whether they are bitwise equal.
func sameValues(a, b *runtime.Tensor) (rel float64, bitwise bool, err error) {
	x, y := a.Float32Data(), b.Float32Data()
	if len(x) != len(y) {
		return 0, false, fmt.Errorf("%d values against %d", len(x), len(y))
	}
	bitwise = true
	var diff, scale float64
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
			bitwise = false
		}
		diff = max(diff, math.Abs(float64(x[i])-float64(y[i])))
		scale = max(scale, math.Abs(float64(y[i])))
	}
	if scale == 0 {
		return diff, bitwise, nil
	}
	return diff / scale, bitwise, nil
}

// stackSession finds m's decoder stack and opens a session on m.
func stackSession(t *testing.T, m *pb.ModelProto) (*discover.Stack, *runtime.Session) {
	t.Helper()
	st := testmodel.Find(t, m)
	sess, err := runtime.New(m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st, sess
}

// TestLayerMajorCalibrationMatchesBatchMajor: the calibration set run layer by
// layer (every batch through one layer, then the next) gives the boundaries
// and final states of running each batch through the whole model, to 1e-6
// relative (bitwise on these models: the same kernels see the same data).
func TestLayerMajorCalibrationMatchesBatchMajor(t *testing.T) {
	ctx := context.Background()
	for _, tc := range layerMajorModels(t) {
		t.Run(tc.name, func(t *testing.T) {
			st, sess := stackSession(t, tc.m)
			steps := 0
			lay, err := calibrate(ctx, sess, st, tc.rows, 4, func() { steps++ }) // batches of 4 and 2
			if err != nil {
				t.Fatal(err)
			}
			if steps != calibrationSteps(st.NumLayers()) {
				t.Errorf("%d progress steps, want %d", steps, calibrationSteps(st.NumLayers()))
			}
			bat, err := calibrateBatchMajor(ctx, sess, st, tc.rows, 4)
			if err != nil {
				t.Fatal(err)
			}
			if len(lay.batches) != len(bat.batches) || lay.tokens != bat.tokens {
				t.Fatalf("%d batches / %d tokens layer-major, %d / %d batch-major", len(lay.batches), lay.tokens, len(bat.batches), bat.tokens)
			}
			allBitwise := true
			for j := range lay.batches {
				lb, bb := lay.batches[j], bat.batches[j]
				pairs := [][2]*runtime.Tensor{{lb.final, bb.final}}
				for i := range bb.hidden {
					pairs = append(pairs, [2]*runtime.Tensor{lb.hidden[i], bb.hidden[i]})
					if st.Branch != nil && st.Branch[i] != "" {
						if lb.branch[i] == nil || bb.branch[i] == nil {
							t.Fatalf("batch %d, boundary %d: no branch cached", j, i)
						}
						pairs = append(pairs, [2]*runtime.Tensor{lb.branch[i], bb.branch[i]})
						// The stream the measures read is h_i plus its branch.
						h, r, sum := lb.hidden[i].Float32Data(), lb.branch[i].Float32Data(), lb.stream(i)
						for k := range sum {
							if sum[k] != h[k]+r[k] {
								t.Fatalf("batch %d, boundary %d: stream %g at %d, h %g + branch %g", j, i, sum[k], k, h[k], r[k])
							}
						}
					}
				}
				for i, p := range pairs {
					rel, bitwise, err := sameValues(p[0], p[1])
					if err != nil || rel > 1e-6 {
						t.Errorf("batch %d, value %d: relative difference %g (%v)", j, i, rel, err)
					}
					allBitwise = allBitwise && bitwise
				}
			}
			for i := range bat.blockInfluence {
				if math.Abs(lay.blockInfluence[i]-bat.blockInfluence[i]) > 1e-9 {
					t.Errorf("block influence of layer %d: %g layer-major, %g batch-major", i, lay.blockInfluence[i], bat.blockInfluence[i])
				}
			}
			t.Logf("%d boundaries × %d batches, bitwise equal: %v", len(bat.batches[0].hidden), len(bat.batches), allBitwise)
		})
	}
}

// TestLayerMajorCandidateMatchesBatchMajor: a candidate (two merged windows,
// one of them with a dropped top) run layer-major from the cached stream gives
// the final states and logits of the same candidate run batch by batch from
// the token ids.
func TestLayerMajorCandidateMatchesBatchMajor(t *testing.T) {
	ctx := context.Background()
	for _, tc := range layerMajorModels(t) {
		t.Run(tc.name, func(t *testing.T) {
			st, sess := stackSession(t, tc.m)
			cal, err := calibrate(ctx, sess, st, tc.rows, 4, nil)
			if err != nil {
				t.Fatal(err)
			}
			sc := &scorer{model: tc.m, stack: st, cal: cal}
			a, err := newAutoEval(ctx, sc)
			if err != nil {
				t.Fatal(err)
			}
			L := st.NumLayers()
			plan := rewrite.Plan{Windows: []rewrite.Window{
				{Window: slm.Window{Low: 1, High: 2}, Rule: rewrite.Paper},
				{Window: slm.Window{Low: L - 2, High: L - 1}, Rule: rewrite.Drop},
			}}
			cand, err := sc.candidate(plan, 1, true)
			if err != nil {
				t.Fatal(err)
			}
			fetch := []string{st.FinalNorm, a.logits}
			got := make([]map[string]*runtime.Tensor, len(cal.batches))
			if err := cand.run(ctx, cal.batches, L, fetch, func(j int, out map[string]*runtime.Tensor) error {
				got[j] = out
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for j, b := range cal.batches {
				want, err := cand.RunContext(ctx, withHidden(cand.Session, b, "", nil), fetch)
				if err != nil {
					t.Fatal(err)
				}
				for _, name := range fetch {
					if rel, _, err := sameValues(got[j][name], want[name]); err != nil || rel > 1e-6 {
						t.Errorf("batch %d, %s: relative difference %g (%v)", j, name, rel, err)
					}
				}
			}
			if st.Branch != nil {
				// The run reads the cached branch it is fed, not one it
				// recomputes from the token ids: a zero branch changes the
				// final states.
				bs := append([]calibBatch(nil), cal.batches...)
				for j := range bs {
					b := bs[j].branch[1]
					z, err := runtime.FromSlice(b.Shape(), make([]float32, b.Len()))
					if err != nil {
						t.Fatal(err)
					}
					bs[j].branch = append([]*runtime.Tensor(nil), bs[j].branch...)
					bs[j].branch[1] = z
				}
				if err := cand.run(ctx, bs, L, fetch, func(j int, out map[string]*runtime.Tensor) error {
					if rel, _, err := sameValues(out[st.FinalNorm], got[j][st.FinalNorm]); err != nil || rel < 1e-3 {
						t.Errorf("batch %d: a zero branch at layer 1 moved the final states by %g (%v): the fed branch was not read", j, rel, err)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				sc.work = work{}
				if err := cand.run(ctx, cal.batches, L, fetch, func(int, map[string]*runtime.Tensor) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
			// Two layers below the lowest changed one are not run; the rest
			// (L − 1 − 1 − 1 layers after the two windows) and the head are.
			wantLayers := float64(L - 1 - 2)
			if sc.work.layers != wantLayers || sc.work.heads != 1 {
				t.Errorf("work %+v, want %g layers and 1 head", sc.work, wantLayers)
			}
		})
	}
}

// BenchmarkCalibrate compares the layer-major calibration run with the
// batch-major reference on the shared models (16 rows of 128 tokens, batches
// of 8), each on a fresh session, so plan building is counted:
//
//	go test ./prune -run '^$' -bench Calibrate -benchtime 5x
func BenchmarkCalibrate(b *testing.B) {
	for _, name := range []string{"llama8", "gpt2_6"} {
		fx := load(&testing.T{}, name)
		st, err := discover.Find(fx.model)
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"layer_major", "batch_major"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				cpu0 := rusage.CPU()
				for range b.N {
					sess, err := runtime.New(fx.model, runtime.Options{})
					if err != nil {
						b.Fatal(err)
					}
					if mode == "layer_major" {
						_, err = calibrate(context.Background(), sess, st, fx.calib, 8, nil)
					} else {
						_, err = calibrateBatchMajor(context.Background(), sess, st, fx.calib, 8)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				// CPU time is steadier than wall time on a shared machine.
				b.ReportMetric((rusage.CPU()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/op")
			})
		}
	}
}
