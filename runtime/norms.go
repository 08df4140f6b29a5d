package runtime

import (
	"fmt"
	"math"
)

// onnxruntime's normalization contrib ops, as its CPU kernels compute them
// (onnxruntime/core/providers/cpu/nn/layer_norm_impl.cc and
// contrib_ops/cpu/skip_layer_norm.cc): per row of the normalized size d,
//
//	rms  = sqrt(Σx²/d + ε)              (simplified: RMSNorm)
//	y    = x / rms · γ
//	std  = sqrt(Σx²/d − mean² + ε)      (layer norm)
//	y    = (x − mean) / std · γ + β
//
// with the sums taken in float64 here (onnxruntime sums in float32: the
// results agree within float32 rounding, far inside the 1e-5 the tests ask).

// normOutputsOnly refuses the optional statistics outputs (mean,
// inv_std_var) that no producer reads: only the listed outputs may be used.
func normOutputsOnly(c *compileCtx, allowed ...int) error {
	for i, v := range c.n.out {
		if v < 0 {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == i
		}
		if !ok {
			return fmt.Errorf("output %d (a saved statistic) is not supported", i)
		}
	}
	return nil
}

// normAttrs reads the attributes of LayerNormalization and its RMS
// variants: the first normalized axis (default -1) and epsilon (default 1e-5);
// stash_type is allowed, and checked by the kernel that needs it.
func normAttrs(c *compileCtx) (axis int64, eps float32, err error) {
	r := c.read("axis", "epsilon", "stash_type")
	axis, eps = r.int("axis", -1), r.float("epsilon", 1e-5)
	return axis, eps, r.err
}

// compileSimplifiedLayerNorm is SimplifiedLayerNormalization (X, scale), and
// opset 23's RMSNormalization, which is the same: RMSNorm over the axes from
// axis on.
func compileSimplifiedLayerNorm(c *compileCtx) (kernel, error) {
	axis, eps, err := normAttrs(c)
	if err != nil {
		return nil, err
	}
	if st, err := c.attrs.int("stash_type", 1); err != nil || st != 1 {
		return nil, fmt.Errorf("stash_type %d: only 1 (float32 statistics) is supported", st)
	}
	if err := normOutputsOnly(c, 0); err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x, w := in[0], in[1]
		if x.dtype != Float32 || w.dtype != Float32 {
			return nil, fmt.Errorf("SimplifiedLayerNormalization of %v and %v: want float32", x.dtype, w.dtype)
		}
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		d := numel(x.shape[a:])
		if w.Len() != d || d == 0 {
			return nil, fmt.Errorf("scale of shape %v for normalized size %d", w.shape, d)
		}
		out := ec.newF32(append([]int{}, x.shape...))
		xd, od, wd := x.Float32Data(), out.Float32Data(), w.Float32Data()
		parallelFor(ec.threads, len(xd)/d, d*4, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				normRow(od[r*d:(r+1)*d], xd[r*d:(r+1)*d], wd, nil, eps, true)
			}
		})
		return []*Tensor{out}, nil
	}, nil
}

// normRow writes the (simplified or full) layer norm of x to o.
func normRow(o, x, gamma, beta []float32, eps float32, simplified bool) {
	d := len(x)
	var s, ss float64
	for _, v := range x {
		s += float64(v)
		ss += float64(v) * float64(v)
	}
	mean := s / float64(d)
	vr := ss / float64(d)
	if !simplified {
		vr -= mean * mean
	}
	den := float32(math.Sqrt(vr + float64(eps)))
	if simplified {
		for i, v := range x {
			o[i] = v / den * gamma[i]
		}
		return
	}
	m := float32(mean)
	for i, v := range x {
		y := (v - m) / den * gamma[i]
		if beta != nil {
			y += beta[i]
		}
		o[i] = y
	}
}

// compileSkipLayerNorm is com.microsoft SkipLayerNormalization (input, skip,
// gamma, beta, bias) or, simplified, SkipSimplifiedLayerNormalization (input,
// skip, gamma, bias): the norm of input + skip (+ bias) over the last axis;
// output 3 is that sum (the residual stream the next layer reads).
func compileSkipLayerNorm(simplified bool) func(c *compileCtx) (kernel, error) {
	return func(c *compileCtx) (kernel, error) {
		eps, err := sole(c.attrs, c.attrs.float, "epsilon", 1e-12)
		if err != nil {
			return nil, err
		}
		if err := normOutputsOnly(c, 0, 3); err != nil {
			return nil, err
		}
		op := "SkipLayerNormalization"
		biasIn := 4
		if simplified {
			op, biasIn = "SkipSimplifiedLayerNormalization", 3
		}
		return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
			x, skip, gamma := in[0], in[1], in[2]
			var beta, bias *Tensor
			if !simplified && len(in) > 3 {
				beta = in[3]
			}
			if len(in) > biasIn {
				bias = in[biasIn]
			}
			for _, t := range []*Tensor{x, skip, gamma, beta, bias} {
				if t != nil && t.dtype != Float32 {
					return nil, fmt.Errorf("%s of %v: want float32", op, t.dtype)
				}
			}
			if x.Rank() < 2 {
				return nil, fmt.Errorf("%s: input of shape %v, want rank ≥ 2", op, x.shape)
			}
			d := x.shape[x.Rank()-1]
			n := x.Len()
			for _, p := range []struct {
				name string
				t    *Tensor
			}{{"gamma", gamma}, {"beta", beta}, {"bias", bias}} {
				if p.t != nil && p.t.Len() != d {
					return nil, fmt.Errorf("%s: %s of shape %v, want %d values", op, p.name, p.t.shape, d)
				}
			}
			// skip is the input's shape or broadcasts over the batch.
			if sl := skip.Len(); sl == 0 || d == 0 || sl%d != 0 || n%sl != 0 || skip.shape[skip.Rank()-1] != d {
				return nil, fmt.Errorf("%s: skip of shape %v does not fit input %v", op, skip.shape, x.shape)
			}
			out := ec.newF32(append([]int{}, x.shape...))
			var sum *Tensor
			var sd []float32
			if len(c.n.out) > 3 && c.n.out[3] >= 0 {
				sum = ec.newF32(append([]int{}, x.shape...))
				sd = sum.Float32Data()
			}
			xd, kd, od, gd := x.Float32Data(), skip.Float32Data(), out.Float32Data(), gamma.Float32Data()
			var bd, bt []float32
			if beta != nil {
				bt = beta.Float32Data()
			}
			if bias != nil {
				bd = bias.Float32Data()
			}
			parallelFor(ec.threads, n/d, d*4, func(lo, hi int) {
				for r := lo; r < hi; r++ {
					xr, kr := xd[r*d:(r+1)*d], kd[(r*d)%len(kd):][:d]
					o := od[r*d : (r+1)*d]
					for i := range o {
						v := xr[i] + kr[i]
						if bd != nil {
							v += bd[i]
						}
						o[i] = v
					}
					if sum != nil {
						copy(sd[r*d:(r+1)*d], o)
					}
					normRow(o, o, gd, bt, eps, simplified)
				}
			})
			return []*Tensor{out, nil, nil, sum}, nil
		}, nil
	}
}

// compileFastGelu is com.microsoft FastGelu (X, bias): the tanh
// approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) of x + bias.
func compileFastGelu(c *compileCtx) (kernel, error) {
	return compileBiasAct(c, "FastGelu", func(x float64) float64 {
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	})
}

// compileBiasGelu is com.microsoft BiasGelu (A, B): the exact (erf) GELU of
// A + B.
func compileBiasGelu(c *compileCtx) (kernel, error) {
	return compileBiasAct(c, "BiasGelu", func(x float64) float64 {
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	})
}

// compileBiasAct applies f elementwise to x + bias (bias over the last axis,
// optional), computing f in float64.
func compileBiasAct(c *compileCtx, op string, f func(float64) float64) (kernel, error) {
	if err := c.attrs.only(); err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		var bias *Tensor
		if len(in) > 1 {
			bias = in[1]
		}
		if x.dtype != Float32 || bias != nil && bias.dtype != Float32 {
			return nil, fmt.Errorf("%s: want float32 inputs", op)
		}
		var bd []float32
		if bias != nil {
			if x.Rank() == 0 || bias.Len() != x.shape[x.Rank()-1] {
				return nil, fmt.Errorf("%s: bias of shape %v for input %v", op, bias.shape, x.shape)
			}
			bd = bias.Float32Data()
		}
		out := ec.newF32(append([]int{}, x.shape...))
		xd, od := x.Float32Data(), out.Float32Data()
		parallelElems(ec.threads, len(xd), 20, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				v := xd[i]
				if bd != nil {
					v += bd[i%len(bd)]
				}
				od[i] = float32(f(float64(v)))
			}
		})
		return []*Tensor{out}, nil
	}, nil
}
