package prune

import (
	"context"
	"fmt"
	"math"
	goruntime "runtime"
	"slices"
	"sync"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/repair"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/similarity"
)

// autoEval measures candidate plans for the auto method on the calibration
// set. Beyond the paper's criterion (cosine of final-normed states) it
// measures what the goal is about, the next-token distributions: the KL
// divergence from the original model's and the candidate's own NLL. The
// calibration rows are split in two: repairs are fitted on the first rows and
// every measure is reported separately for the fit rows and the rows held out
// from fitting (the check rows), so a repair that only memorises its fit rows
// shows up.
type autoEval struct {
	sc     *scorer
	logits string
	// orig[b] is the original model's next-token distributions for batch b.
	orig  []distributions
	vocab int
	// denseKL: the original's distributions are kept whole (exact KL), else
	// cut to their most likely tokens (kl.go).
	denseKL bool
	// threads share the per-token work of the KL (0: all cores).
	threads int
	// firstRow[b] is the calibration index of batch b's first row.
	firstRow []int
	// fitRows: calibration rows [0, fitRows) fit repairs; the rest, up to rows,
	// check them.
	fitRows, rows int

	// evaluations counts the candidate models measured, fits the repairs
	// fitted; both also count in the scorer's evaluations and time.
	evaluations, fits int
}

// metrics are one candidate's measures over the calibration rows that fit
// repairs, over those held out from fitting (the check rows), and over all.
type metrics struct {
	Fit, Check, All measures
}

// measures are a candidate's measures over some calibration rows.
type measures struct {
	Cos float64 // mean cosine of the final-normed states per sequence (the paper's criterion)
	KL  float64 // mean KL(original ‖ candidate) of next-token distributions, nats per token
	NLL float64 // mean next-token NLL of the candidate, nats per predicted token
}

func newAutoEval(ctx context.Context, sc *scorer) (*autoEval, error) {
	sess, err := runtime.New(sc.model, sc.rt)
	if err != nil {
		return nil, fmt.Errorf("auto: prepare model: %w", err)
	}
	name, err := lm.LogitsName(sess)
	if err != nil {
		return nil, fmt.Errorf("auto: %w", err)
	}
	a := &autoEval{sc: sc, logits: name, threads: sc.rt.Threads}
	sc.logits = name
	n := 0
	L := sc.stack.NumLayers()
	for _, b := range sc.cal.batches {
		a.firstRow = append(a.firstRow, n)
		n += len(b.rows)
		feeds := withStream(sess, b, sc.at(L), b.values(L))
		out, err := sess.RunContext(ctx, feeds, []string{name})
		if err != nil {
			return nil, fmt.Errorf("auto: original logits: %w", err)
		}
		t := out[name]
		a.vocab = t.Dim(t.Rank() - 1)
		a.denseKL = sc.cal.tokens*a.vocab <= maxDenseKL
		if a.denseKL {
			a.orig = append(a.orig, newDistributions(t.Float32Data(), a.vocab))
		} else {
			a.orig = append(a.orig, distributions{top: newTopDistributions(t.Float32Data(), a.vocab, topKL), values: t.Len()})
		}
		sess.Recycle(t)
	}
	a.rows, a.fitRows = n, n
	if n >= 4 {
		a.fitRows = n - n/4
	}
	return a, nil
}

// passCost weighs the work of this model's candidates: a layer by its
// parameters, the LM head by d·vocab.
func (a *autoEval) passCost() passCost {
	st := a.sc.stack
	pc := passCost{L: st.NumLayers()}
	for i := range st.Layers {
		pc.layerParams += float64(st.Layers[i].NumParams())
	}
	pc.layerParams /= float64(max(1, pc.L))
	if len(a.sc.cal.batches) > 0 {
		h := a.sc.cal.batches[0].hidden[0]
		pc.headParams = float64(h.Dim(h.Rank()-1)) * float64(a.vocab)
	}
	return pc
}

// distributions are a model's next-token distributions over a batch, kept in
// the form the KL of a candidate needs: for each token t, p[t·V:(t+1)·V] the
// probabilities (float32), negH[t] = Σ_j p_j·log p_j and mass[t] = Σ_j p_j
// (float64). Then, for a candidate with logits z and log-sum-exp lse,
//
//	KL(p ‖ q) = Σ_j p_j (log p_j − z_j + lse) = negH − Σ_j p_j z_j + lse·mass
//
// which costs one exp per logit (for lse) and one dot product, and needs
// no log-softmax of the candidate.
type distributions struct {
	p          []float32
	negH, mass []float64
	// top, when set, replaces the rest: the distributions cut to their most
	// likely tokens (kl.go), for a vocabulary too large to keep whole.
	top *topDistributions
	// values is tokens × vocab, the size of the logits they came from.
	values int
}

func newDistributions(logits []float32, v int) distributions {
	n := len(logits) / v
	d := distributions{p: make([]float32, len(logits)), negH: make([]float64, n), mass: make([]float64, n), values: len(logits)}
	for t := 0; t < n; t++ {
		z := logits[t*v : (t+1)*v]
		lse := lm.LogSumExp(z)
		for j, x := range z {
			lp := float64(x) - lse
			p := float32(math.Exp(lp))
			d.p[t*v+j] = p
			d.negH[t] += float64(p) * lp
			d.mass[t] += float64(p)
		}
	}
	return d
}

// tokenScores returns, for each token t of a candidate's logits (rows of v),
// KL(original ‖ candidate) and the candidate's log-sum-exp, computed on up to
// threads goroutines (each token on its own, so the result does not depend
// on their number).
func (d distributions) tokenScores(logits []float32, v, threads int) (kl, lse []float64) {
	if d.top != nil {
		return d.top.tokenScores(logits, threads)
	}
	n := len(logits) / v
	kl, lse = make([]float64, n), make([]float64, n)
	forTokens(n, threads, func(t int) {
		z, p := logits[t*v:(t+1)*v], d.p[t*v:(t+1)*v]
		var dot float64
		for j, x := range z {
			dot += float64(p[j]) * float64(x)
		}
		lse[t] = lm.LogSumExp(z)
		kl[t] = d.negH[t] - dot + lse[t]*d.mass[t]
	})
	return kl, lse
}

// forTokens runs f(t) for t in 0..n-1 on up to threads goroutines
// (GOMAXPROCS when threads <= 0), in contiguous ranges; each token is
// computed on its own, so results do not depend on the number of threads.
func forTokens(n, threads int, f func(t int)) {
	if threads <= 0 {
		threads = goruntime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	per := max(1, (n+threads-1)/threads)
	for lo := 0; lo < n; lo += per {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			for t := lo; t < hi; t++ {
				f(t)
			}
		}(lo, min(lo+per, n))
	}
	wg.Wait()
}

// measure builds the model of plan and measures it; lowest is the lowest
// layer the plan changes (the candidate runs from the cached stream there).
func (a *autoEval) measure(ctx context.Context, plan rewrite.Plan, lowest int) (metrics, error) {
	sc := a.sc
	cand, err := sc.candidate(plan, lowest, true)
	if err != nil {
		return metrics{}, err
	}
	// Sums and counts per group of rows: the fit rows, the check rows, all.
	const fit, check, all = 0, 1, 2
	var sum [3]measures
	var cnt [3]struct{ seq, tok, pred float64 }
	err = cand.run(ctx, sc.cal.batches, sc.stack.NumLayers(), []string{sc.stack.FinalNorm, a.logits}, func(bi int, out map[string]*runtime.Tensor) error {
		b := sc.cal.batches[bi]
		fin, want := out[sc.stack.FinalNorm].Float32Data(), b.final.Float32Data()
		lg := out[a.logits].Float32Data()
		if len(fin) != len(want) || len(lg) != a.orig[bi].values {
			return fmt.Errorf("candidate model: outputs of %d and %d values, the original's %d and %d", len(fin), len(lg), len(want), a.orig[bi].values)
		}
		per := len(want) / len(b.rows)
		T := len(b.rows[0])
		V := a.vocab
		klTok, lse := a.orig[bi].tokenScores(lg, V, a.threads)
		for r, row := range b.rows {
			g := fit
			if a.firstRow[bi]+r >= a.fitRows {
				g = check
			}
			c, err := similarity.Cosine(fin[r*per:(r+1)*per], want[r*per:(r+1)*per])
			if err != nil {
				return err
			}
			var kl, nll float64
			for t := 0; t < T; t++ {
				kl += klTok[r*T+t]
				if t+1 < T {
					nll += lse[r*T+t] - float64(lg[(r*T+t)*V+int(row[t+1])])
				}
			}
			for _, gi := range []int{g, all} {
				sum[gi].Cos += c
				sum[gi].KL += kl
				sum[gi].NLL += nll
				cnt[gi].seq++
				cnt[gi].tok += float64(T)
				cnt[gi].pred += float64(T - 1)
			}
		}
		cand.Recycle(out[sc.stack.FinalNorm], out[a.logits])
		return nil
	})
	if err != nil {
		return metrics{}, err
	}
	var m metrics
	for g, dst := range [3]*measures{&m.Fit, &m.Check, &m.All} {
		if cnt[g].seq == 0 {
			g = all // no rows in the group (too few to hold any out): all rows stand for it
		}
		*dst = measures{Cos: sum[g].Cos / cnt[g].seq, KL: sum[g].KL / cnt[g].tok, NLL: sum[g].NLL / cnt[g].pred}
	}
	a.evaluations++
	cand.done()
	return m, nil
}

// repairSite is where a window's repair goes: the projection that writes the
// merged layer's last residual branch (the MLP's down projection).
type repairSite struct {
	slot   int      // the projection weight's slot
	tap    string   // the value the projection (and its bias) outputs in layer low
	out    boundary // the stream leaving layer low
	offset bool     // whether the projection has a bias (an offset can be fitted)
	// normBias: the boundary norm adds the projection's bias with the branch
	// (discover.Layer.OutputBranchBias), so tap lacks it; the fit reads
	// tap + bias, the projection's output with its bias.
	normBias bool
	width    int
}

// site finds the repair site of layer low: the projection whose output,
// directly or through its bias and shape-only ops, is added to the stream
// leaving the layer (discover's Projection.Residual), with a weight read once.
func (a *autoEval) site(low int) (repairSite, error) {
	layer := a.sc.stack.Layers[low]
	for _, p := range layer.Projections {
		w := p.Matrix()
		// A MatMulNBits weight takes the repair in float and is quantized
		// again (rewrite's fuseNBits); int8 per-tensor ones take none.
		if p.Residual == "" || (p.Storage != discover.Dense && p.Storage != discover.NBits) || w < 0 || len(layer.Params[w].Uses) != 1 {
			continue
		}
		return repairSite{slot: w, tap: p.Residual, out: layerOut(layer), offset: p.Bias >= 0, width: int(p.Out),
			normBias: p.Bias >= 0 && layer.OutputBranchBias != "" && p.Residual == layer.OutputBranch}, nil
	}
	return repairSite{}, fmt.Errorf("auto: layer %d: no projection writes its last residual branch", low)
}

// fastFitWidth: repairs this wide or wider are fitted on the repair
// package's float32 path (the runtime's matrix kernels; float64 sums and
// diagonal blocks), narrower ones in float64. At d 2048 a float64 fit costs
// about half a minute of gonum's products, more than a pass of the model;
// the float32 fit, under a second, and its predictions agree with the
// float64 fit's to ~1e-5 (repair.TestFloat32MatchesFloat64). Below 512 the
// float64 fit costs less than the layer runs around it, and the shared
// models (d 128) keep their float64 results bit for bit.
const fastFitWidth = 512

// newProblem starts the least-squares problem of a repair at site.
func (a *autoEval) newProblem(site repairSite) (*repair.Problem, error) {
	if site.width >= fastFitWidth {
		return repair.NewProblem32(site.width, site.width, site.offset, runtime.BLAS(a.threads))
	}
	return repair.NewProblem(site.width, site.width, site.offset)
}

// repairOptions configure fitRepairs.
type repairOptions struct {
	Ridge float64
}

// fitRepairs fits, bottom-up, a repair for each window of plan: a linear map
// on the output of the merged layer's last projection that makes the stream
// leaving the merged layer reproduce the stream leaving the original window
// (h_{high+1}), fitted by ridge regression toward the identity on the fit
// rows. Each window is fitted with the repairs below it in place, so later
// fits also absorb the error the lower windows leave. It returns the plan with
// repairs set.
func (a *autoEval) fitRepairs(ctx context.Context, plan rewrite.Plan, opts repairOptions) (rewrite.Plan, error) {
	sc := a.sc
	out := rewrite.Plan{Rule: plan.Rule, Remove: plan.Remove, Windows: append([]rewrite.Window(nil), plan.Windows...)}
	lowest := sc.stack.NumLayers()
	for _, w := range out.Windows {
		lowest = min(lowest, w.Low)
	}
	for _, r := range out.Remove {
		lowest = min(lowest, r)
	}
	order := make([]int, len(out.Windows))
	for i := range order {
		order[i] = i
	}
	for i := 1; i < len(order); i++ { // ascending by Low
		for j := i; j > 0 && out.Windows[order[j]].Low < out.Windows[order[j-1]].Low; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	for _, wi := range order {
		w := out.Windows[wi]
		site, err := a.site(w.Low)
		if err != nil {
			continue // no place to fold a repair: the window stays unrepaired
		}
		cur := rewrite.Plan{Rule: out.Rule, Remove: out.Remove, Windows: append([]rewrite.Window(nil), out.Windows...)}
		cur.Windows[wi].Repair = nil
		cand, err := sc.candidate(cur, lowest, true)
		if err != nil {
			return rewrite.Plan{}, err
		}
		prob, err := a.newProblem(site)
		if err != nil {
			return rewrite.Plan{}, err
		}
		var fitBatches []calibBatch
		for bi, b := range sc.cal.batches {
			if a.firstRow[bi] < a.fitRows {
				fitBatches = append(fitBatches, b)
			}
		}
		bias, err := branchBias(cand.Session, site.out)
		if err != nil {
			return rewrite.Plan{}, err
		}
		err = cand.run(ctx, fitBatches, w.Low, append([]string{site.tap}, site.out...), func(bi int, o map[string]*runtime.Tensor) error {
			b := fitBatches[bi]
			y, err := site.output(o, bias)
			if err != nil {
				return err
			}
			h, err := streamOf(o, site.out, bias)
			if err != nil {
				return err
			}
			target := b.stream(w.High + 1)
			if len(y) != len(h) || len(h) != len(target) {
				return fmt.Errorf("repair of window %d..%d: %d projection outputs for a stream of %d", w.Low, w.High, len(y), len(h))
			}
			per := len(h) / len(b.rows)
			nfit := min(len(b.rows), a.fitRows-a.firstRow[bi])
			want := make([]float32, nfit*per)
			for i := range want {
				want[i] = target[i] - h[i] + y[i]
			}
			if err := prob.Add(y[:nfit*per], want); err != nil {
				return err
			}
			cand.Recycle(o[site.tap])
			recycleOut(cand.Session, o, site.out, site.tap)
			return nil
		})
		if err != nil {
			return rewrite.Plan{}, fmt.Errorf("repair of window %d..%d: %w", w.Low, w.High, err)
		}
		fit, err := prob.Solve(repair.Options{Ridge: opts.Ridge})
		if err != nil {
			return rewrite.Plan{}, fmt.Errorf("repair of window %d..%d: %w", w.Low, w.High, err)
		}
		mat, off := fit.Float32()
		rp := &rewrite.Repair{Slot: site.slot, Matrix: mat}
		if site.offset {
			rp.Bias = off
		}
		out.Windows[wi].Repair = rp
		a.fits++
		cand.done()
	}
	return out, nil
}

// output is the site's projection output with its bias from a run's fetched
// values: tap, plus bias (the boundary norm's, branchBias) when the norm adds
// it (a new slice then).
func (s repairSite) output(o map[string]*runtime.Tensor, bias []float32) ([]float32, error) {
	y := o[s.tap].Float32Data()
	if !s.normBias {
		return y, nil
	}
	return addBranch(y, nil, bias)
}

// layerOut is the boundary leaving layer l: its output, and the branch it
// leaves for the next norm to add on a fused-residual stack.
func layerOut(l discover.Layer) boundary {
	if l.OutputBranch != "" {
		return boundary{l.Output, l.OutputBranch}
	}
	return boundary{l.Output}
}

// streamOf is the stream at boundary at from a run's fetched values: the
// value itself, or the sum of h, its branch and bias, the constant the
// boundary norm adds with it (nil: none; branchBias) (a new slice).
func streamOf(o map[string]*runtime.Tensor, at boundary, bias []float32) ([]float32, error) {
	h := o[at[0]].Float32Data()
	if len(at) == 1 {
		return h, nil
	}
	return addBranch(h, o[at[1]].Float32Data(), bias)
}

// recycleOut hands the fetched values of boundary at back to sess, unless
// one of them is also the repair tap the caller recycles (the down
// projection writes the branch itself).
func recycleOut(sess *runtime.Session, o map[string]*runtime.Tensor, at boundary, skip ...string) {
	for _, n := range at {
		if !slices.Contains(skip, n) {
			sess.Recycle(o[n])
		}
	}
}
