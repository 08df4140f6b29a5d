package prune

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/slm"
)

// runGenerated builds the model of cfg and runs opts on it; an error fails t.
func runGenerated(t *testing.T, cfg modelgen.Config, opts Options) *Outcome {
	t.Helper()
	m, err := modelgen.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Run(context.Background(), m, opts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// randomRows returns n rows of t random byte tokens.
func randomRows(n, t int, seed uint64) [][]int64 {
	r := rand.New(rand.NewPCG(seed, 1))
	rows := make([][]int64, n)
	for i := range rows {
		rows[i] = make([]int64, t)
		for j := range rows[i] {
			rows[i][j] = int64(r.IntN(256))
		}
	}
	return rows
}

// autoFixture calibrates a small generated model for the auto method's parts.
func autoFixture(t *testing.T, cfg modelgen.Config) (*pb.ModelProto, *autoEval) {
	t.Helper()
	m, st := testmodel.Generated(t, cfg)
	return m, calibratedAuto(t, m, st, randomRows(8, 16, 3), 3)
}

// calibratedAuto calibrates m on rows (in batches of batch) for the auto
// method's evaluations.
func calibratedAuto(t *testing.T, m *pb.ModelProto, st *discover.Stack, rows [][]int64, batch int) *autoEval {
	t.Helper()
	a, err := newAutoEval(context.Background(), &scorer{model: m, stack: st, cal: calibrateRows(t, m, st, rows, batch)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// calibrateRows runs m in the Go runtime on rows (in batches of batch) and
// keeps what the searches need of st's streams.
func calibrateRows(t *testing.T, m *pb.ModelProto, st *discover.Stack, rows [][]int64, batch int) *calibration {
	t.Helper()
	sess, err := runtime.New(m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cal, err := calibrate(context.Background(), sess, st, rows, batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cal
}

// streamError is the mean squared difference, over the fit rows, between the
// stream leaving window w's merged layer under plan and the original stream
// leaving the window.
func streamError(t *testing.T, a *autoEval, plan rewrite.Plan, w rewrite.Window) float64 {
	t.Helper()
	res, err := rewrite.Merge(a.sc.model, a.sc.stack, plan, rewrite.Options{Meta: rewrite.Meta{Omit: true}})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := runtime.New(res.Model, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := a.sc.stack.Layers[w.Low].Output
	var sum float64
	var n int
	for bi, b := range a.sc.cal.batches {
		o, err := sess.Run(b.feeds, []string{out})
		if err != nil {
			t.Fatal(err)
		}
		got, want := o[out].Float32Data(), b.hidden[w.High+1].Float32Data()
		per := len(got) / len(b.rows)
		for r := range b.rows {
			if a.firstRow[bi]+r >= a.fitRows {
				continue
			}
			for i := r * per; i < (r+1)*per; i++ {
				d := float64(got[i]) - float64(want[i])
				sum += d * d
				n++
			}
		}
	}
	return sum / float64(n)
}

// TestRepairNeverWorsensTheFittedStream: on both architectures (with and
// without projection biases) the repair site is the MLP's output projection,
// and the repaired merged layer reproduces the window's output on the fit rows
// at least as well as the unrepaired one (the identity is a candidate of the
// ridge fit, so least squares cannot do worse), and far better here.
func TestRepairNeverWorsensTheFittedStream(t *testing.T) {
	for _, tc := range []struct {
		arch   string
		offset bool
	}{{modelgen.Llama, false}, {modelgen.GPT2, true}} {
		t.Run(tc.arch, func(t *testing.T) {
			_, a := autoFixture(t, modelgen.Config{Arch: tc.arch, Layers: 4, Hidden: 16, Heads: 2, Seed: 7})
			if a.fitRows != 6 || a.rows != 8 {
				t.Errorf("split: got %d fit rows of %d, want 6 of 8", a.fitRows, a.rows)
			}
			site, err := a.site(1)
			if err != nil {
				t.Fatal(err)
			}
			if site.offset != tc.offset || !strings.Contains(a.sc.stack.Layers[1].Params[site.slot].Role, "mlp.proj_weight") {
				t.Errorf("site: got slot %d (%s), offset %v; want the MLP's output projection, offset %v",
					site.slot, a.sc.stack.Layers[1].Params[site.slot].Role, site.offset, tc.offset)
			}
			for _, rule := range []rewrite.Rule{rewrite.Paper, rewrite.Drop} {
				w := rewrite.Window{Window: slm.Window{Low: 1, High: 2}, Rule: rule}
				plain := rewrite.Plan{Windows: []rewrite.Window{w}}
				fixed, err := a.fitRepairs(context.Background(), plain, repairOptions{Ridge: 0.01})
				if err != nil {
					t.Fatal(err)
				}
				if fixed.Windows[0].Repair == nil {
					t.Fatalf("%s: no repair fitted", rule)
				}
				before, after := streamError(t, a, plain, w), streamError(t, a, fixed, w)
				if !(after <= before) || after > 0.9*before {
					t.Errorf("%s: stream error on the fit rows: got %.4g repaired vs %.4g plain, want clearly lower", rule, after, before)
				}
			}
		})
	}
}

// TestAutoRunOnGeneratedModel runs the default method end to end on a small
// generated model: it is the default, reaches the depth, records its windows,
// rules and repairs, and counts its evaluations.
func TestAutoRunOnGeneratedModel(t *testing.T) {
	out := runGenerated(t, modelgen.Config{Arch: modelgen.GPT2, Layers: 5, Hidden: 16, Heads: 2, Seed: 3},
		Options{Layers: 3, Calibration: randomRows(8, 16, 5), Batch: 4, Version: "test"})
	rep := out.Report
	if rep.Method != Auto {
		t.Errorf("default method: got %q, want %q", rep.Method, Auto)
	}
	if rep.LayersAfter != 3 || !rep.ReachedTarget {
		t.Errorf("layers after: got %d (reached %v), want 3", rep.LayersAfter, rep.ReachedTarget)
	}
	if rep.Auto == nil {
		t.Fatal("report has no auto section")
	}
	removed := 0
	for _, w := range rep.Auto.Windows {
		removed += w.High - w.Low
		if !w.Repaired {
			t.Errorf("window %d..%d: not repaired", w.Low, w.High)
		}
	}
	if removed != 2 {
		t.Errorf("auto windows %+v remove %d layers, want 2", rep.Auto.Windows, removed)
	}
	// 5 layers, 2 removed: 4 + 3 windows × 4 rules measured alone (minus
	// duplicates), up to 8 sets, the ridge grid.
	if rep.Auto.Options < 10 || rep.Auto.Evaluations < rep.Auto.Options || rep.Candidates < rep.Auto.Evaluations+rep.Auto.Fits {
		t.Errorf("counts: %d options, %d evaluations, %d fits, %d candidates in the report", rep.Auto.Options, rep.Auto.Evaluations, rep.Auto.Fits, rep.Candidates)
	}
	chosen := 0
	for _, c := range rep.Auto.Combinations {
		if c.Chosen {
			chosen++
		}
	}
	if chosen != 1 {
		t.Errorf("%d combinations marked chosen, want 1", chosen)
	}
	md := map[string]string{}
	for _, p := range out.Model.GetMetadataProps() {
		md[p.GetKey()] = p.GetValue()
	}
	if md["onnxslm.method"] != "auto" || md["onnxslm.repaired_windows"] == "" || md["onnxslm.threshold"] != "" {
		t.Errorf("metadata: got method %q, repaired %q, threshold %q", md["onnxslm.method"], md["onnxslm.repaired_windows"], md["onnxslm.threshold"])
	}
}

// TestAutoDefaultBeatsShortGPTOnEvalGo is the one test that reads a held-out
// evaluation set, as a guard on the goal of issue 8 (the method itself never
// sees it): on gpt2_6 cut to 4 layers, the default method's eval_go
// perplexity must be below ShortGPT's at the same depth.
func TestAutoDefaultBeatsShortGPTOnEvalGo(t *testing.T) {
	if testing.Short() {
		t.Skip("prunes gpt2_6 twice and evaluates both on the held-out sets")
	}
	fx := load(t, "gpt2_6")
	ppl := map[Method]float64{}
	for _, method := range []Method{"", ShortGPT} {
		out, err := Run(context.Background(), fx.model, Options{Method: method, Layers: 4, Calibration: fx.calib, Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if out.Report.LayersAfter != 4 {
			t.Fatalf("%s: got %d layers, want 4", out.Report.Method, out.Report.LayersAfter)
		}
		ppl[out.Report.Method], _ = perplexities(t, fx.dir, out.Model)
	}
	if !(ppl[Auto] < ppl[ShortGPT]) {
		t.Errorf("eval_go perplexity at 4 layers: got %.3f for the default (auto), want below shortgpt's %.3f", ppl[Auto], ppl[ShortGPT])
	}
	t.Logf("eval_go at 4 layers: auto %.3f, shortgpt %.3f", ppl[Auto], ppl[ShortGPT])
}

// TestAutoScreensDeepModels: a model with more candidate windows than
// MaxSpans has them screened (and the report says so), and the search still
// removes exactly the layers asked for.
func TestAutoScreensDeepModels(t *testing.T) {
	out := runGenerated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 12, Hidden: 16, Heads: 2, FFN: 24, Seed: 11},
		Options{Layers: 8, Calibration: randomRows(8, 16, 7), Batch: 4, Version: "test"})
	a := out.Report.Auto
	// 12 layers, 4 removed: windows of 2..5 layers, 11 + 10 + 9 + 8 = 38.
	if a.Spans != 38 {
		t.Errorf("spans = %d, want 38", a.Spans)
	}
	if a.SpansMeasured < defaultAuto.MaxSpans || a.SpansMeasured > defaultAuto.MaxSpans*3/2 || a.Screen == "" {
		t.Errorf("measured %d of %d windows (screen %q), want %d..%d and a screen", a.SpansMeasured, a.Spans, a.Screen, defaultAuto.MaxSpans, defaultAuto.MaxSpans*3/2)
	}
	if a.Options > a.SpansMeasured*len(defaultAuto.Rules) {
		t.Errorf("%d options from %d windows × %d rules", a.Options, a.SpansMeasured, len(defaultAuto.Rules))
	}
	// Local first: every screened window measured by its local error, a few
	// options by KL, the whole search within a bound in passes (the KL for
	// every screened window cost 40.7 passes here).
	if a.LocalOptions < a.SpansMeasured || a.Options >= a.LocalOptions {
		t.Errorf("%d options measured locally, %d by KL, from %d windows", a.LocalOptions, a.Options, a.SpansMeasured)
	}
	if bound := 4*float64(a.SpansMeasured)/12 + defaultAuto.KLBudget + 2 + 7; a.Cost.Passes > bound {
		t.Errorf("the search cost %.1f passes, above %.1f (local + KL budget + one measure past it + sets and ridge)", a.Cost.Passes, bound)
	}
	removed := 0
	for _, w := range a.Windows {
		removed += w.High - w.Low
	}
	if removed != 4 || out.Report.LayersAfter != 8 {
		t.Errorf("windows %+v remove %d layers (%d left), want 4 (8 left)", a.Windows, removed, out.Report.LayersAfter)
	}
}

// TestTokenScoresMatchTheDefinition: the KL and log-sum-exp computed from the
// kept distributions equal KL(p ‖ q) = Σ p (log p − log q) computed from both
// models' log-softmax, and do not depend on the number of goroutines.
func TestTokenScoresMatchTheDefinition(t *testing.T) {
	const n, v = 7, 50
	orig, cand := logitPairs(n, v, 0.5)
	d := newDistributions(orig, v)
	kl, lse := d.tokenScores(cand, v, 1)
	for tok := 0; tok < n; tok++ {
		zo, zc := orig[tok*v:(tok+1)*v], cand[tok*v:(tok+1)*v]
		lo, lc := lm.LogSumExp(zo), lm.LogSumExp(zc)
		var want float64
		for j := range zo {
			lp, lq := float64(zo[j])-lo, float64(zc[j])-lc
			want += math.Exp(lp) * (lp - lq)
		}
		if math.Abs(kl[tok]-want) > 1e-6*math.Max(1, want) || want <= 0 {
			t.Errorf("token %d: KL %.9g, want %.9g", tok, kl[tok], want)
		}
		if lse[tok] != lc {
			t.Errorf("token %d: lse %v, want %v", tok, lse[tok], lc)
		}
	}
	for _, threads := range []int{2, 3, 16} {
		k2, l2 := d.tokenScores(cand, v, threads)
		if !slices.Equal(k2, kl) || !slices.Equal(l2, lse) {
			t.Errorf("%d goroutines changed the scores", threads)
		}
	}
}
