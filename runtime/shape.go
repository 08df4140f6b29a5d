package runtime

import (
	"errors"
	"fmt"
	"math"
)

func compileSize(c *compileCtx) (kernel, error) {
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		return []*Tensor{ScalarInt64(int64(in[0].Len()))}, nil
	}, c.attrs.only()
}

func compileIdentity(c *compileCtx) (kernel, error) {
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		return []*Tensor{in[0].reshaped(in[0].shape)}, nil
	}, c.attrs.only()
}

func compileShape(c *compileCtx) (kernel, error) {
	r := c.read("start", "end")
	start, end := r.int("start", 0), r.int("end", math.MaxInt64)
	if r.err != nil {
		return nil, r.err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		r := int64(in[0].Rank())
		clampDim := func(v int64) int64 {
			if v < 0 {
				v += r
			}
			return min(max(v, 0), r)
		}
		s, e := clampDim(start), clampDim(end)
		var dims []int64
		for i := s; i < e; i++ {
			dims = append(dims, int64(in[0].shape[i]))
		}
		if dims == nil {
			dims = []int64{}
		}
		return []*Tensor{{dtype: Int64, shape: []int{len(dims)}, data: dims}}, nil
	}, nil
}

// reshapeTarget resolves a Reshape shape (0 copies the input dim unless
// allowZero, -1 is inferred).
func reshapeTarget(in []int, spec []int64, allowZero bool) ([]int, error) {
	out := make([]int, len(spec))
	infer := -1
	known := 1
	for i, v := range spec {
		switch {
		case v == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", spec)
			}
			infer = i
			continue
		case v == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v copies dimension %d of input shape %v, which has none", spec, i, in)
			}
			out[i] = in[i]
		case v < 0:
			return nil, fmt.Errorf("invalid dimension %d in shape %v", v, spec)
		default:
			if v > math.MaxInt32*64 {
				return nil, fmt.Errorf("dimension %d too large", v)
			}
			out[i] = int(v)
		}
		known *= out[i]
	}
	n := numel(in)
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", in, n, spec)
		}
		out[infer] = n / known
	} else if known != n {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", in, n, spec)
	}
	return out, nil
}

func compileReshape(c *compileCtx) (kernel, error) {
	az, err := sole(c.attrs, c.attrs.int, "allowzero", 0)
	if err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		spec, err := intsOf(in[1], "shape")
		if err != nil {
			return nil, err
		}
		shape, err := reshapeTarget(in[0].shape, spec, az != 0)
		if err != nil {
			return nil, err
		}
		return []*Tensor{in[0].reshaped(shape)}, nil
	}, nil
}

func compileFlatten(c *compileCtx) (kernel, error) {
	axis, err := sole(c.attrs, c.attrs.int, "axis", 1)
	if err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		r := in[0].Rank()
		a := int(axis)
		if a < 0 {
			a += r
		}
		if a < 0 || a > r {
			return nil, fmt.Errorf("axis %d out of range for rank %d", axis, r)
		}
		return []*Tensor{in[0].reshaped([]int{numel(in[0].shape[:a]), numel(in[0].shape[a:])})}, nil
	}, nil
}

// axesArg reads axes from the attribute (older opsets) or the optional input.
func axesArg(attr []int64, hasAttr bool, in []*Tensor, i int) ([]int64, bool, error) {
	if hasAttr {
		return attr, true, nil
	}
	if len(in) > i && in[i] != nil {
		v, err := intsOf(in[i], "axes")
		return v, true, err
	}
	return nil, false, nil
}

// axesKernel compiles an op whose one attribute is axes (older opsets) or
// whose axes are input 1 (newer ones): run gets input 0, the axes and whether
// any were given.
func axesKernel(c *compileCtx, run func(x *Tensor, axes []int64, given bool) ([]*Tensor, error)) (kernel, error) {
	r := c.read("axes")
	attr, hasAttr := r.ints("axes")
	if r.err != nil {
		return nil, r.err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		axes, ok, err := axesArg(attr, hasAttr, in, 1)
		if err != nil {
			return nil, err
		}
		return run(in[0], axes, ok)
	}, nil
}

func compileUnsqueeze(c *compileCtx) (kernel, error) {
	return axesKernel(c, func(x *Tensor, axes []int64, ok bool) ([]*Tensor, error) {
		if !ok {
			return nil, errors.New("axes are required")
		}
		r := x.Rank() + len(axes)
		ins := make([]bool, r)
		for _, a := range axes {
			n, err := normAxis(a, r)
			if err != nil {
				return nil, err
			}
			if ins[n] {
				return nil, fmt.Errorf("axis %d repeated", a)
			}
			ins[n] = true
		}
		shape := make([]int, 0, r)
		j := 0
		for i := range r {
			if ins[i] {
				shape = append(shape, 1)
			} else {
				shape = append(shape, x.shape[j])
				j++
			}
		}
		return []*Tensor{x.reshaped(shape)}, nil
	})
}

func compileSqueeze(c *compileCtx) (kernel, error) {
	return axesKernel(c, func(x *Tensor, axes []int64, ok bool) ([]*Tensor, error) {
		drop := make([]bool, x.Rank())
		if !ok {
			for i, d := range x.shape {
				drop[i] = d == 1
			}
		}
		for _, a := range axes {
			n, err := normAxis(a, x.Rank())
			if err != nil {
				return nil, err
			}
			if x.shape[n] != 1 {
				return nil, fmt.Errorf("cannot squeeze axis %d of shape %v", a, x.shape)
			}
			drop[n] = true
		}
		shape := []int{}
		for i, d := range x.shape {
			if !drop[i] {
				shape = append(shape, d)
			}
		}
		return []*Tensor{x.reshaped(shape)}, nil
	})
}

func compileDropout(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("seed", "ratio", "is_test"); err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		if len(in) > 2 && in[2] != nil {
			if tm := in[2].BoolData(); len(tm) == 1 && tm[0] {
				return nil, errors.New("training_mode=true is not supported (inference only)")
			}
		}
		out := []*Tensor{in[0].reshaped(in[0].shape), nil}
		if len(c.n.out) > 1 && c.n.out[1] >= 0 {
			m := newTensor(Bool, append([]int{}, in[0].shape...))
			for i := range m.BoolData() {
				m.BoolData()[i] = true
			}
			out[1] = m
		}
		return out, nil
	}, nil
}

func compileTranspose(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("perm"); err != nil {
		return nil, err
	}
	perm, hasPerm, err := c.attrs.ints("perm")
	if err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		r := x.Rank()
		p := make([]int, r)
		if hasPerm {
			if len(perm) != r {
				return nil, fmt.Errorf("perm %v for rank %d", perm, r)
			}
			seen := make([]bool, r)
			for i, v := range perm {
				a, err := normAxis(v, r)
				if err != nil || seen[a] {
					return nil, fmt.Errorf("invalid perm %v", perm)
				}
				seen[a] = true
				p[i] = a
			}
		} else {
			for i := range p {
				p[i] = r - 1 - i
			}
		}
		if x.isHalf() {
			return []*Tensor{permutedHalf(x, p)}, nil
		}
		return []*Tensor{transpose(ec, x, p)}, nil
	}, nil
}

func transpose(ec *execCtx, x *Tensor, p []int) *Tensor {
	r := x.Rank()
	shape := make([]int, r)
	st := make([]int, r)
	xs := stridesOf(x.shape)
	for i, a := range p {
		shape[i] = x.shape[a]
		st[i] = xs[a]
	}
	out := ec.newOut(x.dtype, shape)
	stridedCopy(ec.threads, rawBytes(out), rawBytes(x), x.dtype.size(), shape, st, 0)
	return out
}

func compileConcat(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("axis"); err != nil {
		return nil, err
	}
	if !c.attrs.has("axis") {
		return nil, errors.New("attribute axis is required")
	}
	axis, err := c.attrs.int("axis", 0)
	if err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		var parts []*Tensor
		for _, t := range in {
			if t != nil {
				parts = append(parts, t)
			}
		}
		if len(parts) == 0 {
			return nil, errors.New("no inputs")
		}
		// Zero-size inputs (an empty past key/value cache) are skipped when
		// their shape does not otherwise match.
		ref := parts[0]
		for _, t := range parts {
			if t.Len() > 0 {
				ref = t
				break
			}
		}
		r := ref.Rank()
		a, err := normAxis(axis, r)
		if err != nil {
			return nil, err
		}
		shape := append([]int{}, ref.shape...)
		shape[a] = 0
		var use []*Tensor
		for _, t := range parts {
			if t.dtype != ref.dtype {
				return nil, fmt.Errorf("inputs of types %v and %v", ref.dtype, t.dtype)
			}
			ok := t.Rank() == r
			for i := 0; ok && i < r; i++ {
				ok = i == a || t.shape[i] == ref.shape[i]
			}
			if !ok {
				if t.Len() == 0 {
					continue
				}
				return nil, fmt.Errorf("cannot concatenate shapes %v and %v on axis %d", ref.shape, t.shape, axis)
			}
			shape[a] += t.shape[a]
			use = append(use, t)
		}
		out := ec.newOut(ref.dtype, shape)
		es := ref.dtype.size()
		outer := numel(shape[:a])
		inner := numel(shape[a+1:]) * es
		ob := rawBytes(out)
		rowOut := shape[a] * inner
		off := 0
		for _, t := range use {
			tb := rawBytes(t)
			blk := t.shape[a] * inner
			for o := range outer {
				copy(ob[o*rowOut+off:o*rowOut+off+blk], tb[o*blk:(o+1)*blk])
			}
			off += blk
		}
		return []*Tensor{out}, nil
	}, nil
}

// sliceRange resolves one axis of Slice: first index, step and count.
func sliceRange(start, end, step int64, dim int) (int, int, int) {
	d := int64(dim)
	if start < 0 {
		start += d
	}
	if end < 0 {
		end += d
	}
	var n int64
	if step > 0 {
		start = min(max(start, 0), d)
		end = min(max(end, 0), d)
		if end > start {
			n = (end - start + step - 1) / step
		}
	} else {
		start = min(max(start, 0), d-1)
		end = min(max(end, -1), d-1)
		if start > end {
			n = (start - end + (-step) - 1) / (-step)
		}
	}
	return int(start), int(step), int(n)
}

func compileSlice(c *compileCtx) (kernel, error) {
	if err := c.attrs.only(); err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		starts, err := intsOf(in[1], "starts")
		if err != nil {
			return nil, err
		}
		ends, err := intsOf(in[2], "ends")
		if err != nil {
			return nil, err
		}
		if len(starts) != len(ends) {
			return nil, fmt.Errorf("%d starts and %d ends", len(starts), len(ends))
		}
		var axes, steps []int64
		if len(in) > 3 && in[3] != nil {
			if axes, err = intsOf(in[3], "axes"); err != nil {
				return nil, err
			}
		}
		if len(in) > 4 && in[4] != nil {
			if steps, err = intsOf(in[4], "steps"); err != nil {
				return nil, err
			}
		}
		if axes != nil && len(axes) != len(starts) || steps != nil && len(steps) != len(starts) {
			return nil, errors.New("starts, ends, axes and steps differ in length")
		}
		r := x.Rank()
		xs := stridesOf(x.shape)
		shape := append([]int{}, x.shape...)
		st := append([]int{}, xs...)
		base := 0
		seen := make([]bool, r)
		for i := range starts {
			a := i
			if axes != nil {
				if a, err = normAxis(axes[i], r); err != nil {
					return nil, err
				}
			} else if i >= r {
				return nil, fmt.Errorf("%d starts for rank %d", len(starts), r)
			}
			if seen[a] {
				return nil, fmt.Errorf("axis %d repeated", a)
			}
			seen[a] = true
			step := int64(1)
			if steps != nil {
				step = steps[i]
			}
			if step == 0 {
				return nil, errors.New("step 0")
			}
			s, k, n := sliceRange(starts[i], ends[i], step, x.shape[a])
			shape[a] = n
			if n > 0 {
				base += s * xs[a]
			}
			st[a] = xs[a] * k
		}
		out := ec.newOut(x.dtype, shape)
		stridedCopy(ec.threads, rawBytes(out), rawBytes(x), x.dtype.size(), shape, st, base)
		return []*Tensor{out}, nil
	}, nil
}

func compileSplit(c *compileCtx) (kernel, error) {
	r := c.read("axis", "split", "num_outputs")
	axis := r.int("axis", 0)
	splitAttr, hasSplit := r.ints("split")
	numOut := r.int("num_outputs", int64(len(c.n.out)))
	if r.err != nil {
		return nil, r.err
	}
	if numOut != int64(len(c.n.out)) {
		return nil, fmt.Errorf("num_outputs=%d but the node has %d outputs", numOut, len(c.n.out))
	}
	nout := len(c.n.out)
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		dim := x.shape[a]
		sizes, ok, err := axesArg(splitAttr, hasSplit, in, 1)
		if err != nil {
			return nil, err
		}
		if !ok {
			// Equal parts; the last is smaller when dim does not divide (opset 18).
			chunk := (dim + nout - 1) / nout
			sizes = make([]int64, nout)
			left := dim
			for i := range sizes {
				sizes[i] = int64(min(chunk, left))
				left -= int(sizes[i])
			}
		}
		if len(sizes) != nout {
			return nil, fmt.Errorf("%d split sizes for %d outputs", len(sizes), nout)
		}
		total := 0
		for _, s := range sizes {
			if s < 0 {
				return nil, fmt.Errorf("negative split size in %v", sizes)
			}
			total += int(s)
		}
		if total != dim {
			return nil, fmt.Errorf("split sizes %v do not add up to dimension %d", sizes, dim)
		}
		es := x.dtype.size()
		outer := numel(x.shape[:a])
		inner := numel(x.shape[a+1:]) * es
		xb := rawBytes(x)
		row := dim * inner
		outs := make([]*Tensor, nout)
		off := 0
		for i, s := range sizes {
			shape := append([]int{}, x.shape...)
			shape[a] = int(s)
			o := ec.newOut(x.dtype, shape)
			ob := rawBytes(o)
			blk := int(s) * inner
			for r := range outer {
				copy(ob[r*blk:(r+1)*blk], xb[r*row+off:r*row+off+blk])
			}
			off += blk
			outs[i] = o
		}
		return outs, nil
	}, nil
}

func compileGather(c *compileCtx) (kernel, error) {
	axis, err := sole(c.attrs, c.attrs.int, "axis", 0)
	if err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x, idx := in[0], in[1]
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		ids, err := idx.Int64s()
		if err != nil || idx.dtype == Bool {
			return nil, fmt.Errorf("indices: want int64 or int32, got %v", idx.dtype)
		}
		shape := append(append(append([]int{}, x.shape[:a]...), idx.shape...), x.shape[a+1:]...)
		if x.isHalf() {
			return gatherHalf(ec, x, a, ids, shape)
		}
		if err := checkIndices(ids, a, x.shape[a]); err != nil {
			return nil, err
		}
		out := ec.newOut(x.dtype, shape)
		inner := numel(x.shape[a+1:]) * x.dtype.size()
		xb, ob := rawBytes(x), rawBytes(out)
		gatherRows(numel(x.shape[:a]), x.shape[a], ids, func(dst, src int) {
			copy(ob[dst*inner:(dst+1)*inner], xb[src*inner:(src+1)*inner])
		})
		return []*Tensor{out}, nil
	}, nil
}

// checkIndices refuses Gather indices outside [-dim, dim) of axis.
func checkIndices(ids []int64, axis, dim int) error {
	for _, v := range ids {
		if v < -int64(dim) || v >= int64(dim) {
			return fmt.Errorf("index %d out of range for dimension %d of size %d", v, axis, dim)
		}
	}
	return nil
}

// gatherRows calls put(dst, src) for each row Gather copies: output row
// o·len(ids) + j from input row o·dim + ids[j] (a negative id counts from the
// end), for o < outer.
func gatherRows(outer, dim int, ids []int64, put func(dst, src int)) {
	for o := range outer {
		for j, v := range ids {
			if v < 0 {
				v += int64(dim)
			}
			put(o*len(ids)+j, o*dim+int(v))
		}
	}
}

// shapeArg reads a shape input (ConstantOfShape, Expand): dimensions from 0
// to 2³¹·64.
func shapeArg(t *Tensor) ([]int, error) {
	spec, err := intsOf(t, "shape")
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(spec))
	for i, v := range spec {
		if v < 0 || v > math.MaxInt32*64 {
			return nil, fmt.Errorf("invalid shape %v", spec)
		}
		shape[i] = int(v)
	}
	return shape, nil
}

func compileExpand(c *compileCtx) (kernel, error) {
	if err := c.attrs.only(); err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		target, err := shapeArg(in[1])
		if err != nil {
			return nil, err
		}
		shape, err := broadcastShape(in[0].shape, target)
		if err != nil {
			return nil, err
		}
		return []*Tensor{expandTo(ec, in[0], shape)}, nil
	}, nil
}

// expandTo broadcasts x to shape (which x must broadcast to).
func expandTo(ec *execCtx, x *Tensor, shape []int) *Tensor {
	st := broadcastStrides(x.shape, stridesOf(x.shape), len(shape))
	out := ec.newOut(x.dtype, shape)
	stridedCopy(ec.threads, rawBytes(out), rawBytes(x), x.dtype.size(), shape, st, 0)
	return out
}

func compileTile(c *compileCtx) (kernel, error) {
	if err := c.attrs.only(); err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		reps, err := intsOf(in[1], "repeats")
		if err != nil {
			return nil, err
		}
		if len(reps) != x.Rank() {
			return nil, fmt.Errorf("%d repeats for rank %d", len(reps), x.Rank())
		}
		// View the output as [r0, d0, r1, d1, ...] with zero strides on repeats.
		var shape, st []int
		out := make([]int, x.Rank())
		xs := stridesOf(x.shape)
		for i, rp := range reps {
			if rp < 0 {
				return nil, fmt.Errorf("negative repeat %d", rp)
			}
			shape = append(shape, int(rp), x.shape[i])
			st = append(st, 0, xs[i])
			out[i] = int(rp) * x.shape[i]
		}
		t := ec.newOut(x.dtype, out)
		stridedCopy(ec.threads, rawBytes(t), rawBytes(x), x.dtype.size(), shape, st, 0)
		return []*Tensor{t}, nil
	}, nil
}
