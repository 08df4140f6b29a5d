package prune

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/blas"

	"github.com/onnxslm/onnxslm/repair"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/slm"
)

// localMeasure is a window's own error, measured where it ends: the stream
// leaving its merged layer (repaired) against the original stream leaving
// the window, h_{high+1}, on the calibration rows held out from the repair
// fit. It costs one layer's run of the calibration set (the merged layer,
// from the cached stream entering it), where the KL costs every layer above
// it and the LM head.
type localMeasure struct {
	// NMSE is Σ‖h' − h_{high+1}‖² / Σ‖h_{high+1}‖² over the check tokens.
	NMSE float64
	// Cos is 1 − the mean over check tokens of cos(h', h_{high+1}).
	Cos float64
}

// fitLocal fits window w's repair on the fit rows (when its layer has a
// repair site) and measures its local error on the check rows, from one run
// of the merged layer over all rows. It returns w with the repair set.
func (a *autoEval) fitLocal(ctx context.Context, w rewrite.Window, ridge float64, repaired bool) (rewrite.Window, localMeasure, error) {
	sc := a.sc
	w.Repair = nil
	site, siteErr := a.site(w.Low)
	if !repaired && siteErr == nil {
		siteErr = fmt.Errorf("no repair asked for")
	}
	out := layerOut(sc.stack.Layers[w.Low])
	fetch := append([]string(nil), out...)
	if siteErr == nil {
		fetch = append(fetch, site.tap)
	}
	cand, err := sc.candidate(rewrite.Plan{Windows: []rewrite.Window{w}}, w.Low, true)
	if err != nil {
		return w, localMeasure{}, err
	}
	bias, err := branchBias(cand.Session, out)
	if err != nil {
		return w, localMeasure{}, err
	}
	var prob *repair.Problem
	if siteErr == nil {
		if prob, err = a.newProblem(site); err != nil {
			return w, localMeasure{}, err
		}
	}
	// The check rows' outputs are kept (a quarter of the calibration set's
	// stream, twice) until the repair is known.
	type held struct{ y, h, t []float32 }
	var check []held
	d := 0
	err = cand.run(ctx, sc.cal.batches, w.Low, fetch, func(bi int, o map[string]*runtime.Tensor) error {
		b := sc.cal.batches[bi]
		h, err := streamOf(o, out, bias)
		if err != nil {
			return err
		}
		var y []float32
		if prob != nil {
			if y, err = site.output(o, bias); err != nil {
				return err
			}
		}
		target := b.stream(w.High + 1)
		if len(h) != len(target) || (y != nil && len(y) != len(h)) {
			return fmt.Errorf("window %d..%d: %d projection outputs for a stream of %d", w.Low, w.High, len(y), len(h))
		}
		per := len(h) / len(b.rows)
		d = b.width()
		nfit := max(0, min(len(b.rows), a.fitRows-a.firstRow[bi]))
		if prob != nil && nfit > 0 {
			want := make([]float32, nfit*per)
			for i := range want {
				want[i] = target[i] - h[i] + y[i]
			}
			if err := prob.Add(y[:nfit*per], want); err != nil {
				return err
			}
		}
		if nfit < len(b.rows) || a.fitRows == a.rows {
			lo := nfit * per
			if a.fitRows == a.rows {
				lo = 0 // nothing held out: all rows stand for the check rows
			}
			hc := held{h: append([]float32(nil), h[lo:]...), t: target[lo:]}
			if y != nil {
				hc.y = append([]float32(nil), y[lo:]...)
			}
			check = append(check, hc)
		}
		if prob != nil {
			cand.Recycle(o[site.tap])
			recycleOut(cand.Session, o, out, site.tap)
		} else {
			recycleOut(cand.Session, o, out)
		}
		return nil
	})
	if err != nil {
		return w, localMeasure{}, fmt.Errorf("window %d..%d: %w", w.Low, w.High, err)
	}
	var mat, off []float32
	if prob != nil {
		fit, err := prob.Solve(repair.Options{Ridge: ridge})
		if err != nil {
			return w, localMeasure{}, fmt.Errorf("repair of window %d..%d: %w", w.Low, w.High, err)
		}
		mat, off = fit.Float32()
		w.Repair = &rewrite.Repair{Slot: site.slot, Matrix: mat}
		if site.offset {
			w.Repair.Bias = off
		} else {
			off = nil
		}
		a.fits++
	}
	cand.done()
	var num, den, cos float64
	var n int
	bl := runtime.BLAS(a.threads)
	for _, c := range check {
		hp := c.h
		if mat != nil {
			// h' = h − y + y·M + c
			k := len(c.y) / d
			ym := make([]float32, len(c.y))
			bl.Sgemm(blas.NoTrans, blas.NoTrans, k, d, d, 1, c.y, d, mat, d, 0, ym, d)
			for i := range hp {
				v := hp[i] - c.y[i] + ym[i]
				if off != nil {
					v += off[i%d]
				}
				hp[i] = v
			}
		}
		for s := 0; s < len(hp)/d; s++ {
			x, t := hp[s*d:(s+1)*d], c.t[s*d:(s+1)*d]
			var e, tt, xt, xx float64
			for i := range x {
				dx := float64(x[i]) - float64(t[i])
				e += dx * dx
				tt += float64(t[i]) * float64(t[i])
				xt += float64(x[i]) * float64(t[i])
				xx += float64(x[i]) * float64(x[i])
			}
			num += e
			den += tt
			if xx > 0 && tt > 0 {
				cos += xt / math.Sqrt(xx*tt)
			}
			n++
		}
	}
	if n == 0 || den == 0 {
		return w, localMeasure{}, fmt.Errorf("window %d..%d: no check tokens to measure", w.Low, w.High)
	}
	return w, localMeasure{NMSE: num / den, Cos: 1 - cos/float64(n)}, nil
}

// localSearch is the screened search, local first (cfg.Local), for a model
// with more windows than MaxSpans:
//
//  1. max(MaxSpans, 2·L) windows are screened from the cached stream by span
//     influence (screenSpans);
//  2. each of them with each rule is fitted and measured by its local error
//     (fitLocal: one layer's run of the calibration set);
//  3. per window size, the options of lowest local error (1 − cos, which
//     ranks options as their KL does with a Spearman correlation of 0.92 to
//     0.99 on the shared models and a generated 12-layer one; span influence
//     0.73 to 0.91), taken round-robin
//     over the sizes, are measured by KL (every layer above and the LM head)
//     while the estimated cost stays within KLBudget passes, and past it
//     until their windows can remove exactly k layers together;
//  4. the dynamic program finds the sets among the KL-measured options.
//
// It returns the sets; o holds the KL-measured options.
func localSearch(ctx context.Context, o *autoOptions, L, k, maxW int, rep *AutoReport) ([]slm.Combination, error) {
	a := o.a
	poolSize := o.cfg.LocalSpans
	if poolSize <= 0 {
		poolSize = max(o.cfg.MaxSpans, 2*L)
	}
	pool, total, err := screenSpans(L, k, maxW, poolSize, a.sc.cal.removedInfluence)
	if err != nil {
		return nil, err
	}
	for _, sp := range pool {
		o.measured[sp] = true // measured locally at least
	}
	type local struct {
		win   rewrite.Window
		score float64
	}
	bySize := make([][]local, maxW+1)
	nLocal := 0
	for _, sp := range pool {
		var seen []localMeasure
		for _, rule := range o.cfg.Rules {
			w := rewrite.Window{Window: sp, Rule: rule}
			var lm localMeasure
			var err error
			if w, lm, err = a.fitLocal(ctx, w, o.cfg.Ridge, o.cfg.Repair); err != nil {
				return nil, err
			}
			if slices.ContainsFunc(seen, func(s localMeasure) bool { return nearlyEqual(s.NMSE, lm.NMSE) && nearlyEqual(s.Cos, lm.Cos) }) {
				continue // another rule built the same layer
			}
			seen = append(seen, lm)
			w.Repair = nil // refitted when measured by KL
			bySize[sp.Size()] = append(bySize[sp.Size()], local{w, lm.Cos})
			nLocal++
		}
	}
	for _, list := range bySize {
		slices.SortStableFunc(list, func(x, y local) int { return cmp.Compare(x.score, y.score) })
	}
	var order []local
	for r := 0; len(order) < nLocal; r++ {
		for size := 2; size <= maxW; size++ {
			if r < len(bySize[size]) {
				order = append(order, bySize[size][r])
			}
		}
	}
	pc := a.passCost()
	fitShare := float64(a.fitRows) / float64(max(1, a.rows))
	var spent float64
	measured := 0
	for _, l := range order {
		est := pc.passes(work{layers: float64(L-l.win.Low) + fitShare, heads: 1})
		if spent+est > o.cfg.KLBudget && measured > 0 {
			if _, err := slm.BestCombinations(L, k, o.segs, 1); err == nil {
				break
			}
		}
		if err := o.addOne(ctx, l.win); err != nil {
			return nil, err
		}
		spent += est
		measured++
	}
	rep.LocalOptions = nLocal
	rep.Screen = fmt.Sprintf("local first: %d of the %d windows screened by span influence (1 - cos(h_low+1, h_high+1)); "+
		"their %d options measured by local error (1 - cos of the merged, repaired layer's output and h_high+1 on the check rows, one layer's run each); "+
		"the %d of lowest local error per size, round-robin over the sizes, measured by KL within %g passes",
		len(pool), total, nLocal, measured, o.cfg.KLBudget)
	return slm.BestCombinations(L, k, o.segs, max(1, o.cfg.Joint))
}

// nearlyEqual reports whether a and b agree to 1e-6 relative.
func nearlyEqual(a, b float64) bool {
	return !(math.Abs(a-b) > 1e-6*max(math.Abs(a), math.Abs(b), 1e-12))
}
