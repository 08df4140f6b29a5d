package prune

import (
	"context"
	"fmt"
	"slices"

	"gonum.org/v1/gonum/blas"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/repair"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
)

// refitRidge is the refit's ridge toward the original down rows, relative to
// the mean energy of a kept channel (repair.Options.Ridge).
const refitRidge = 1e-2

// refitDown replaces FLAP's mean compensation in plan by a least-squares
// refit of each pruned layer's down projection (and o projection, for the
// layers losing heads) on its kept input features: the new rows W' and
// offset c minimise ‖X_kept·W' + c − X·W‖² over the fit rows' tokens (X the
// projection's input, W its original weight), with a ridge pulling W' toward
// the original kept rows. The bias compensation is the special case
// W' = W_kept; the refit also moves the kept rows to stand in for what the
// removed features correlated with.
func refitDown(ctx context.Context, m *pb.ModelProto, st *discover.Stack, cal *calibration, rt runtime.Options, fitRows int, plan rewrite.WidthPlan) (rewrite.WidthPlan, error) {
	sess, err := runtime.New(m, rt)
	if err != nil {
		return plan, fmt.Errorf("width refit: %w", err)
	}
	type fit struct {
		layer  int
		keep   []int
		tap    string
		wt     []float32 // the original weight, logical [F, out]
		F, out int
		prob   *repair.Problem
		set    func(w, offset []float32)
	}
	out := rewrite.WidthPlan{MLP: slices.Clone(plan.MLP), Heads: slices.Clone(plan.Heads)}
	var fits []*fit
	var taps []string
	add := func(layer int, p *discover.Projection, keep []int, set func(w, offset []float32)) error {
		l := &st.Layers[layer]
		raw, err := initializerFloats(m, l.Params[p.Matrix()].Name)
		if err != nil {
			return err
		}
		F, o := int(p.In), int(p.Out)
		wt := raw
		if p.Transposed {
			wt = make([]float32, len(raw))
			for r := 0; r < o; r++ {
				for j := 0; j < F; j++ {
					wt[j*o+r] = raw[r*F+j]
				}
			}
		}
		tap, err := dataInput(m, p)
		if err != nil {
			return err
		}
		prob, err := repair.NewProblem(len(keep), o, true)
		if err != nil {
			return err
		}
		fits = append(fits, &fit{layer: layer, keep: keep, tap: tap, wt: wt, F: F, out: o, prob: prob, set: set})
		taps = append(taps, tap)
		return nil
	}
	for i := range out.MLP {
		c := &out.MLP[i]
		_, _, down, err := rewrite.MLPProjections(&st.Layers[c.Layer])
		if err != nil {
			return plan, err
		}
		if err := add(c.Layer, down, c.Keep, func(w, off []float32) { c.Down, c.Offset, c.Mean = w, off, nil }); err != nil {
			return plan, err
		}
	}
	for i := range out.Heads {
		c := &out.Heads[i]
		_, _, _, _, o, a, err := rewrite.AttnProjections(&st.Layers[c.Layer])
		if err != nil {
			return plan, err
		}
		if err := add(c.Layer, o, rewrite.HeadFeatures(c.Keep, a.HeadDim), func(w, off []float32) { c.O, c.Offset, c.Mean = w, off, nil }); err != nil {
			return plan, err
		}
	}
	if len(fits) == 0 {
		return plan, nil
	}
	b32 := runtime.BLAS(rt.Threads)
	err = forFitRows(ctx, sess, cal, fitRows, taps, func(res map[string]*runtime.Tensor, n, rows int) error {
		for _, f := range fits {
			x := res[f.tap].Float32Data()
			x = x[:len(x)/rows*n]
			k := len(x) / f.F
			y := make([]float32, k*f.out)
			b32.Sgemm(blas.NoTrans, blas.NoTrans, k, f.out, f.F, 1, x, f.F, f.wt, f.out, 0, y, f.out)
			xk := make([]float32, k*len(f.keep))
			for s := 0; s < k; s++ {
				for i, j := range f.keep {
					xk[s*len(f.keep)+i] = x[s*f.F+j]
				}
			}
			if err := f.prob.Add(xk, y); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return plan, fmt.Errorf("width refit: %w", err)
	}
	for _, f := range fits {
		prior := make([]float64, len(f.keep)*f.out)
		for i, j := range f.keep {
			for o := 0; o < f.out; o++ {
				prior[i*f.out+o] = float64(f.wt[j*f.out+o])
			}
		}
		mp, err := f.prob.Solve(repair.Options{Ridge: refitRidge, Prior: prior})
		if err != nil {
			return plan, fmt.Errorf("width refit of layer %d: %w", f.layer, err)
		}
		f.set(mp.Float32())
	}
	return out, nil
}
