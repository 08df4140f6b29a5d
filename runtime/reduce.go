package runtime

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

type reduceOp uint8

const (
	redSum reduceOp = iota
	redMean
	redMax
	redMin
	redProd
	redSumSquare
)

// compileReduceOp compiles a Reduce* op; axesInput is the opset from which
// its axes come as an input rather than an attribute.
func compileReduceOp(op reduceOp, axesInput int64) func(c *compileCtx) (kernel, error) {
	return func(c *compileCtx) (kernel, error) { return compileReduce(c, op, axesInput) }
}

// compileSoftmaxOp compiles Softmax, or LogSoftmax when log is set.
func compileSoftmaxOp(log bool) func(c *compileCtx) (kernel, error) {
	return func(c *compileCtx) (kernel, error) { return compileSoftmax(c, log) }
}

func compileReduce(c *compileCtx, op reduceOp, axesInput int64) (kernel, error) {
	r := c.read("axes", "keepdims", "noop_with_empty_axes")
	attrAxes, hasAttr := r.ints("axes")
	if r.err != nil {
		return nil, r.err
	}
	if hasAttr && c.opset >= axesInput {
		return nil, fmt.Errorf("attribute axes is not allowed from opset %d (axes is an input)", axesInput)
	}
	keep, noop := r.int("keepdims", 1), r.int("noop_with_empty_axes", 0)
	if r.err != nil {
		return nil, r.err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		axes, ok, err := axesArg(attrAxes, hasAttr, in, 1)
		if err != nil {
			return nil, err
		}
		x := in[0]
		if (!ok || len(axes) == 0) && noop != 0 {
			return []*Tensor{x.Clone()}, nil
		}
		t, err := reduce(ec, op, x, axes, keep != 0)
		return []*Tensor{t}, err
	}, nil
}

// reduce reduces x over axes (all axes when empty).
func reduce(ec *execCtx, op reduceOp, x *Tensor, axes []int64, keep bool) (*Tensor, error) {
	r := x.Rank()
	red := make([]bool, r)
	if len(axes) == 0 {
		for i := range red {
			red[i] = true
		}
	}
	for _, a := range axes {
		n, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		red[n] = true
	}
	var outShape, perm, keptShape []int
	n := 1
	for i, d := range x.shape {
		if red[i] {
			n *= d
			if keep {
				outShape = append(outShape, 1)
			}
		} else {
			outShape = append(outShape, d)
			keptShape = append(keptShape, d)
			perm = append(perm, i)
		}
	}
	if outShape == nil {
		outShape = []int{}
	}
	for i := range r {
		if red[i] {
			perm = append(perm, i)
		}
	}
	// Move the reduced axes last (a copy only when they are not already).
	src := x
	for i, p := range perm {
		if p != i {
			src = transpose(ec, x, perm)
			break
		}
	}
	rows := numel(keptShape)
	switch x.dtype {
	case Float32:
		out := ec.newF32(outShape)
		xd, od := src.Float32Data(), out.Float32Data()
		parallelFor(ec.threads, rows, n, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				od[i] = float32(reduceRow(op, xd[i*n:(i+1)*n]))
			}
		})
		if src != x {
			ec.recycle(src)
		}
		return out, nil
	case Float64:
		out := newTensor(Float64, outShape)
		xd, od := src.Float64Data(), out.Float64Data()
		for i := range rows {
			od[i] = reduceRow(op, xd[i*n:(i+1)*n])
		}
		return out, nil
	case Int64:
		out := newTensor(Int64, outShape)
		reduceInts(op, src.Int64Data(), out.Int64Data(), n)
		return out, nil
	case Int32:
		out := newTensor(Int32, outShape)
		reduceInts(op, src.Int32Data(), out.Int32Data(), n)
		return out, nil
	}
	return nil, errType("reduction", x.dtype)
}

// sumLanes is Σ float64(row[i]) accumulated in eight interleaved lanes (lane
// l takes the elements i ≡ l mod 8 of the leading multiple of 8), combined
// pairwise in a fixed order, then the tail in order: four to eight times
// faster than one running sum (no chain of dependent adds), and the same
// result for a row whatever the thread count.
func sumLanes[T float32 | float64](row []T) float64 {
	var a0, a1, a2, a3, a4, a5, a6, a7 float64
	n := len(row) &^ 7
	for i := 0; i < n; i += 8 {
		v := row[i : i+8 : i+8]
		a0 += float64(v[0])
		a1 += float64(v[1])
		a2 += float64(v[2])
		a3 += float64(v[3])
		a4 += float64(v[4])
		a5 += float64(v[5])
		a6 += float64(v[6])
		a7 += float64(v[7])
	}
	s := ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
	for _, v := range row[n:] {
		s += float64(v)
	}
	return s
}

// sumSquaresLanes is sumLanes of the float32 squares row[i]·row[i] (what a
// ReduceMean reads from a Pow(x, 2)), without storing them.
func sumSquaresLanes(row []float32) float64 {
	var a0, a1, a2, a3, a4, a5, a6, a7 float64
	n := len(row) &^ 7
	for i := 0; i < n; i += 8 {
		v := row[i : i+8 : i+8]
		a0 += float64(v[0] * v[0])
		a1 += float64(v[1] * v[1])
		a2 += float64(v[2] * v[2])
		a3 += float64(v[3] * v[3])
		a4 += float64(v[4] * v[4])
		a5 += float64(v[5] * v[5])
		a6 += float64(v[6] * v[6])
		a7 += float64(v[7] * v[7])
	}
	s := ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
	for _, v := range row[n:] {
		s += float64(v * v)
	}
	return s
}

// reduceRow reduces one contiguous row, accumulating in float64.
func reduceRow[T float32 | float64](op reduceOp, row []T) float64 {
	switch op {
	case redSum, redMean, redSumSquare:
		var s float64
		if op == redSumSquare {
			for _, v := range row {
				s += float64(v) * float64(v)
			}
		} else {
			s = sumLanes(row)
		}
		if op == redMean {
			s /= float64(len(row))
		}
		return s
	case redProd:
		p := 1.0
		for _, v := range row {
			p *= float64(v)
		}
		return p
	case redMax:
		m := math.Inf(-1)
		for _, v := range row {
			if v != v {
				return math.NaN()
			}
			m = max(m, float64(v))
		}
		return m
	case redMin:
		m := math.Inf(1)
		for _, v := range row {
			if v != v {
				return math.NaN()
			}
			m = min(m, float64(v))
		}
		return m
	}
	return 0
}

func reduceInts[T int64 | int32](op reduceOp, x, out []T, n int) {
	for i := range out {
		row := x[i*n : (i+1)*n]
		var acc T
		switch op {
		case redSum, redMean, redSumSquare:
			for _, v := range row {
				if op == redSumSquare {
					acc += v * v
				} else {
					acc += v
				}
			}
			if op == redMean && n > 0 {
				acc /= T(n)
			}
		case redProd:
			acc = 1
			for _, v := range row {
				acc *= v
			}
		case redMax, redMin:
			if n > 0 {
				acc = row[0]
			}
			for _, v := range row {
				if op == redMax {
					acc = max(acc, v)
				} else {
					acc = min(acc, v)
				}
			}
		}
		out[i] = acc
	}
}

func compileSoftmax(c *compileCtx, logSoftmax bool) (kernel, error) {
	if err := c.attrs.only("axis"); err != nil {
		return nil, err
	}
	def := int64(-1)
	legacy := c.opset < 13 // axis flattens the input to 2-D
	if legacy {
		def = 1
	}
	axis, err := c.attrs.int("axis", def)
	if err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if x.dtype != Float32 {
			return nil, errType("Softmax", x.dtype)
		}
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		outer, n, inner := numel(x.shape[:a]), x.shape[a], numel(x.shape[a+1:])
		if legacy {
			n, inner = numel(x.shape[a:]), 1
		}
		out := ec.outLike(0, Float32, append([]int{}, x.shape...))
		softmax(ec.threads, x.Float32Data(), out.Float32Data(), outer, n, inner, logSoftmax)
		return []*Tensor{out}, nil
	}, nil
}

// softmax normalizes x viewed as [outer, n, inner] over n.
func softmax(threads int, x, out []float32, outer, n, inner int, logSoftmax bool) {
	if inner == 1 {
		parallelFor(threads, outer, n*4, func(lo, hi int) {
			for o := lo; o < hi; o++ {
				softmaxRow(out[o*n:(o+1)*n], x[o*n:(o+1)*n], logSoftmax)
			}
		})
		return
	}
	parallelFor(threads, outer, n*inner*4, func(lo, hi int) {
		row := make([]float32, n)
		res := make([]float32, n)
		for o := lo; o < hi; o++ {
			base := o * n * inner
			for j := range inner {
				for i := range n {
					row[i] = x[base+i*inner+j]
				}
				softmaxRow(res, row, logSoftmax)
				for i := range n {
					out[base+i*inner+j] = res[i]
				}
			}
		}
	})
}

// softmaxRow computes the softmax (or log-softmax) of one row; dst may be src.
// Each row's own maximum is subtracted first, so large logits do not overflow.
func softmaxRow(dst, src []float32, logSoftmax bool) {
	if len(src) == 0 {
		return
	}
	m := kernels.Max(src)
	if m != m || math.IsInf(float64(m), -1) {
		// A NaN, or every element -inf: no finite maximum to subtract.
		for i := range dst {
			dst[i] = float32(math.NaN())
		}
		return
	}
	if logSoftmax {
		var s float64
		for _, v := range src {
			s += math.Exp(float64(v - m))
		}
		ls := float32(math.Log(s))
		for i, v := range src {
			dst[i] = v - m - ls
		}
		return
	}
	s := kernels.ExpShiftSum(dst, src, m)
	inv := []float32{float32(1 / s)}
	f32Row(opMul, dst, dst, inv, 1, 0)
}

func compileLayerNorm(c *compileCtx) (kernel, error) {
	axis, eps, err := normAttrs(c)
	if err != nil {
		return nil, err
	}
	wantMean := len(c.n.out) > 1 && c.n.out[1] >= 0
	wantInv := len(c.n.out) > 2 && c.n.out[2] >= 0
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x, scale := in[0], in[1]
		var bias *Tensor
		if len(in) > 2 {
			bias = in[2]
		}
		if x.dtype != Float32 || scale.dtype != Float32 || bias != nil && bias.dtype != Float32 {
			return nil, errors.New("LayerNormalization supports float32 only")
		}
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		rows, n := numel(x.shape[:a]), numel(x.shape[a:])
		norm := x.shape[a:]
		sc, err := broadcastParam(ec, scale, norm, "scale")
		if err != nil {
			return nil, err
		}
		var bs []float32
		if bias != nil {
			if bs, err = broadcastParam(ec, bias, norm, "bias"); err != nil {
				return nil, err
			}
		}
		out := ec.newF32(append([]int{}, x.shape...))
		statShape := append([]int{}, x.shape...)
		for i := a; i < len(statShape); i++ {
			statShape[i] = 1
		}
		var mean, inv *Tensor
		if wantMean {
			mean = newTensor(Float32, statShape)
		}
		if wantInv {
			inv = newTensor(Float32, append([]int{}, statShape...))
		}
		xd, od := x.Float32Data(), out.Float32Data()
		parallelFor(ec.threads, rows, n*3, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				row := xd[r*n : (r+1)*n]
				var s float64
				for _, v := range row {
					s += float64(v)
				}
				mu := s / float64(n)
				var q float64
				for _, v := range row {
					d := float64(v) - mu
					q += d * d
				}
				is := 1 / math.Sqrt(q/float64(n)+float64(eps))
				m32, i32 := float32(mu), float32(is)
				o := od[r*n : (r+1)*n]
				if bs != nil {
					for i, v := range row {
						o[i] = (v-m32)*i32*sc[i] + bs[i]
					}
				} else {
					for i, v := range row {
						o[i] = (v - m32) * i32 * sc[i]
					}
				}
				if mean != nil {
					mean.Float32Data()[r] = m32
				}
				if inv != nil {
					inv.Float32Data()[r] = i32
				}
			}
		})
		return []*Tensor{out, mean, inv}, nil
	}, nil
}

// broadcastParam returns p's data broadcast to shape (p's own data when it
// already has that many elements).
func broadcastParam(ec *execCtx, p *Tensor, shape []int, what string) ([]float32, error) {
	if p.Len() == numel(shape) {
		if _, err := broadcastShape(p.shape, shape); err == nil {
			return p.Float32Data(), nil
		}
	}
	b, err := broadcastShape(p.shape, shape)
	if err != nil || !sameShape(b, shape) {
		return nil, fmt.Errorf("%s of shape %v does not broadcast to %v", what, p.shape, shape)
	}
	return expandTo(&execCtx{threads: 1}, p, shape).Float32Data(), nil
}

func compileCumSum(c *compileCtx) (kernel, error) {
	r := c.read("exclusive", "reverse")
	excl, rev := r.int("exclusive", 0), r.int("reverse", 0)
	if r.err != nil {
		return nil, r.err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		av, err := in[1].Int64s()
		if err != nil || len(av) != 1 {
			return nil, errors.New("axis: want one integer")
		}
		a, err := normAxis(av[0], x.Rank())
		if err != nil {
			return nil, err
		}
		outer, n, inner := numel(x.shape[:a]), x.shape[a], numel(x.shape[a+1:])
		out := newTensor(x.dtype, append([]int{}, x.shape...))
		switch x.dtype {
		case Float32:
			cumsum(x.Float32Data(), out.Float32Data(), outer, n, inner, excl != 0, rev != 0)
		case Float64:
			cumsum(x.Float64Data(), out.Float64Data(), outer, n, inner, excl != 0, rev != 0)
		case Int64:
			cumsum(x.Int64Data(), out.Int64Data(), outer, n, inner, excl != 0, rev != 0)
		case Int32:
			cumsum(x.Int32Data(), out.Int32Data(), outer, n, inner, excl != 0, rev != 0)
		default:
			return nil, errType("CumSum", x.dtype)
		}
		return []*Tensor{out}, nil
	}, nil
}

func cumsum[T numeric](x, out []T, outer, n, inner int, exclusive, reverse bool) {
	for o := range outer {
		for j := range inner {
			var acc T
			for k := range n {
				i := k
				if reverse {
					i = n - 1 - k
				}
				p := (o*n+i)*inner + j
				if exclusive {
					out[p] = acc
					acc += x[p]
				} else {
					acc += x[p]
					out[p] = acc
				}
			}
		}
	}
}
