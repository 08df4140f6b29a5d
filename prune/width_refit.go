package prune

import (
	"context"
	"fmt"

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
// refit of each pruned layer's down projection on its kept channels: the new
// rows W' and offset c minimise ‖X_kept·W' + c − X·W‖² over the fit rows'
// tokens (X the MLP's intermediate values, W the original down weight), with
// a ridge pulling W' toward the original kept rows. The bias compensation is
// the special case W' = W_kept; the refit also moves the kept rows to stand
// in for what the removed channels correlated with.
func refitDown(ctx context.Context, m *pb.ModelProto, st *discover.Stack, cal *calibration, rt runtime.Options, fitRows int, plan rewrite.WidthPlan) (rewrite.WidthPlan, error) {
	sess, err := runtime.New(m, rt)
	if err != nil {
		return plan, fmt.Errorf("width refit: %w", err)
	}
	type layerFit struct {
		c      *rewrite.MLPChannels
		tap    string
		wt     []float32 // the original down weight, logical [F, out]
		F, out int
		prob   *repair.Problem
	}
	out := rewrite.WidthPlan{MLP: append([]rewrite.MLPChannels(nil), plan.MLP...)}
	var fits []*layerFit
	var taps []string
	for i := range out.MLP {
		c := &out.MLP[i]
		l := &st.Layers[c.Layer]
		_, _, down, err := rewrite.MLPProjections(l)
		if err != nil {
			return plan, err
		}
		raw, err := initializerFloats(m, l.Params[down.Matrix()].Name)
		if err != nil {
			return plan, err
		}
		F, o := int(down.In), int(down.Out)
		wt := raw
		if down.Transposed {
			wt = make([]float32, len(raw))
			for r := 0; r < o; r++ {
				for j := 0; j < F; j++ {
					wt[j*o+r] = raw[r*F+j]
				}
			}
		}
		tap, err := mlpTap(m, l)
		if err != nil {
			return plan, err
		}
		prob, err := repair.NewProblem(len(c.Keep), o, true)
		if err != nil {
			return plan, err
		}
		fits = append(fits, &layerFit{c: c, tap: tap, wt: wt, F: F, out: o, prob: prob})
		taps = append(taps, tap)
	}
	if len(fits) == 0 {
		return plan, nil
	}
	b32 := runtime.BLAS(rt.Threads)
	row := 0
	for _, b := range cal.batches {
		n := min(len(b.rows), fitRows-row)
		row += len(b.rows)
		if n <= 0 {
			break
		}
		res, err := sess.RunContext(ctx, withHidden(sess, b, "", nil), taps)
		if err != nil {
			return plan, fmt.Errorf("width refit: %w", err)
		}
		for _, f := range fits {
			x := res[f.tap].Float32Data()
			x = x[:len(x)/len(b.rows)*n]
			k := len(x) / f.F
			y := make([]float32, k*f.out)
			b32.Sgemm(blas.NoTrans, blas.NoTrans, k, f.out, f.F, 1, x, f.F, f.wt, f.out, 0, y, f.out)
			xk := make([]float32, k*len(f.c.Keep))
			for s := 0; s < k; s++ {
				for i, j := range f.c.Keep {
					xk[s*len(f.c.Keep)+i] = x[s*f.F+j]
				}
			}
			if err := f.prob.Add(xk, y); err != nil {
				return plan, err
			}
		}
	}
	for _, f := range fits {
		prior := make([]float64, len(f.c.Keep)*f.out)
		for i, j := range f.c.Keep {
			for o := 0; o < f.out; o++ {
				prior[i*f.out+o] = float64(f.wt[j*f.out+o])
			}
		}
		mp, err := f.prob.Solve(repair.Options{Ridge: refitRidge, Prior: prior})
		if err != nil {
			return plan, fmt.Errorf("width refit of layer %d: %w", f.c.Layer, err)
		}
		f.c.Down, f.c.Offset = mp.Float32()
		f.c.Mean = nil
	}
	return out, nil
}
