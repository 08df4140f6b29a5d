package prune

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/slm"
)

// logitPairs returns n tokens' logits over v classes, 3·N(0, 1) each, and a
// candidate's: the same plus noise·N(0, 1), drawn with a fixed seed.
func logitPairs(n, v int, noise float64) (orig, cand []float32) {
	r := rand.New(rand.NewPCG(5, 6))
	orig, cand = make([]float32, n*v), make([]float32, n*v)
	for i := range orig {
		orig[i] = float32(3 * r.NormFloat64())
		cand[i] = orig[i] + float32(noise*r.NormFloat64())
	}
	return orig, cand
}

func TestTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ v, k int }{{10, 3}, {50, 50}, {100, 1}, {300, 17}} {
		z := make([]float32, tc.v)
		for i := range z {
			z[i] = float32(r.IntN(20)) // many ties
		}
		got := topK(z, tc.k, make([]int32, 0, tc.k))
		idx := make([]int32, tc.v)
		for i := range idx {
			idx[i] = int32(i)
		}
		slices.SortStableFunc(idx, func(a, b int32) int { return cmp.Compare(z[b], z[a]) })
		if !slices.Equal(got, idx[:tc.k]) {
			t.Errorf("v %d k %d: top %v, want %v", tc.v, tc.k, got, idx[:tc.k])
		}
	}
}

// TestTopKLBounds: the cut KL equals the exact one when the top covers the
// vocabulary and never exceeds it otherwise.
func TestTopKLBounds(t *testing.T) {
	const n, v = 9, 64
	orig, cand := logitPairs(n, v, 0.7)
	exact, lse := newDistributions(orig, v).tokenScores(cand, v, 2)
	for _, k := range []int{v, 32, 8, 1} {
		kl, lse2 := newTopDistributions(orig, v, k).tokenScores(cand, 2)
		for i := range exact {
			if lse2[i] != lse[i] {
				t.Fatalf("k %d token %d: lse %g, want %g", k, i, lse2[i], lse[i])
			}
			switch {
			case k == v && math.Abs(kl[i]-exact[i]) > 1e-6*max(1, exact[i]):
				t.Errorf("k = v, token %d: KL %g, exact %g", i, kl[i], exact[i])
			case kl[i] > exact[i]+1e-6*max(1, exact[i]) || kl[i] < -1e-9:
				t.Errorf("k %d, token %d: KL %g outside [0, exact %g]", k, i, kl[i], exact[i])
			}
		}
	}
}

// TestTopKLError measures the cut KL against the exact one on the shared
// models, for candidates that merge each pair of adjacent layers (paper rule,
// no repair): the mean relative error of the KL and whether the cut KL ranks
// the candidates as the exact one does. Their vocabulary is 256, so the top
// k here is a larger share of it than topKL is of a 32k-152k vocabulary: the
// test reports the error by the mass the top leaves out, which is what the
// error follows.
func TestTopKLError(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"llama8", "gpt2_6"} {
		fx := load(t, name)
		st, cal := calibrated(t, fx)
		sc := &scorer{model: fx.model, stack: st, cal: cal}
		a, err := newAutoEval(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := runtime.New(fx.model, runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		L := st.NumLayers()
		var origLogits [][]float32
		for _, b := range cal.batches {
			out, err := sess.Run(withHidden(sess, b, st.Hidden[L], b.hidden[L]), []string{a.logits})
			if err != nil {
				t.Fatal(err)
			}
			origLogits = append(origLogits, out[a.logits].Float32Data())
		}
		ks := []int{8, 32, 64}
		exact := []float64{}
		cut := make([][]float64, len(ks))
		tail := make([]float64, len(ks))
		for lo := 0; lo+1 < L; lo++ {
			plan := rewrite.Plan{Windows: []rewrite.Window{{Window: slm.Window{Low: lo, High: lo + 1}, Rule: rewrite.Paper}}}
			cand, err := sc.candidate(plan, lo, true)
			if err != nil {
				t.Fatal(err)
			}
			var e float64
			c := make([]float64, len(ks))
			var tokens float64
			if err := cand.run(ctx, cal.batches, L, []string{a.logits}, func(j int, out map[string]*runtime.Tensor) error {
				lg := out[a.logits].Float32Data()
				kl, _ := a.orig[j].tokenScores(lg, a.vocab, 0)
				for _, x := range kl {
					e += x
				}
				for i, k := range ks {
					td := newTopDistributions(origLogits[j], a.vocab, k)
					klk, _ := td.tokenScores(lg, 0)
					for ti, x := range klk {
						c[i] += x
						if lo == 0 {
							tail[i] += td.tail[ti]
						}
					}
				}
				tokens += float64(len(kl))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			exact = append(exact, e/tokens)
			for i := range ks {
				cut[i] = append(cut[i], c[i]/tokens)
				if lo == 0 {
					tail[i] /= tokens
				}
			}
		}
		for i, k := range ks {
			var rel float64
			for j := range exact {
				rel += (exact[j] - cut[i][j]) / exact[j]
			}
			rel /= float64(len(exact))
			rho := spearman(exact, cut[i])
			t.Logf("%s, top %d of %d: mean tail mass %.4f, KL %.2f %% below the exact one on average, rank correlation %.2f", name, k, a.vocab, tail[i], 100*rel, rho)
			if k == 64 && (rel > 0.05 || rho < 0.95) {
				t.Errorf("%s, top %d: the cut KL is %.1f %% off (rank correlation %.2f)", name, k, 100*rel, rho)
			}
		}
	}
}
