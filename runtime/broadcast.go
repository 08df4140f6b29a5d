package runtime

import "fmt"

// broadcastShape is numpy's multidirectional broadcast of shapes.
func broadcastShape(shapes ...[]int) ([]int, error) {
	r := 0
	for _, s := range shapes {
		r = max(r, len(s))
	}
	out := make([]int, r)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			o := out[off+i]
			switch {
			case d == o:
			case o == 1:
				out[off+i] = d
			case d == 1:
			default:
				return nil, fmt.Errorf("shapes %v cannot be broadcast together", shapes)
			}
		}
	}
	return out, nil
}

// broadcastStrides maps strides, an element stride for each dim of shape,
// onto the rank dims that shape broadcasts to (aligned at the right): a dim
// that shape lacks or has as 1 gets stride 0.
func broadcastStrides(shape, strides []int, rank int) []int {
	st := make([]int, rank)
	off := rank - len(shape)
	for i := range rank {
		if j := i - off; j >= 0 && shape[j] != 1 {
			st[i] = strides[j]
		}
	}
	return st
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// bcast iterates an output shape over inputs broadcast to it, as outer loops
// (collapsed where the inputs allow) around one contiguous inner loop.
type bcast struct {
	outer   []int   // outer loop sizes
	strides [][]int // strides[input][outer dim]
	inner   int     // inner loop length
	istride []int   // per input: 1 (walks) or 0 (repeats) along the inner loop
	total   int
}

// newBcast plans iterating out over the inputs' shapes, each broadcastable to
// out.
func newBcast(out []int, ins ...[]int) *bcast {
	r := len(out)
	k := len(ins)
	// Per input, per dim: stride in elements (0 when broadcast).
	type dim struct {
		size    int
		strides []int
	}
	var dims []dim
	full := make([][]int, k)
	for j, s := range ins {
		st := make([]int, r)
		acc := 1
		for i := r - 1; i >= 0; i-- {
			si := i - (r - len(s))
			if si < 0 || s[si] == 1 {
				st[i] = 0
			} else {
				st[i] = acc
			}
			if si >= 0 {
				acc *= s[si]
			}
		}
		full[j] = st
	}
	for i := range r {
		if out[i] == 1 {
			continue
		}
		d := dim{size: out[i], strides: make([]int, k)}
		for j := range k {
			d.strides[j] = full[j][i]
		}
		// Merge with the previous dim when every input continues contiguously.
		if n := len(dims); n > 0 {
			p := &dims[n-1]
			ok := true
			for j := range k {
				if p.strides[j] != d.strides[j]*d.size {
					ok = false
					break
				}
			}
			if ok {
				p.size *= d.size
				copy(p.strides, d.strides)
				continue
			}
		}
		dims = append(dims, d)
	}
	b := &bcast{total: numel(out), istride: make([]int, k), strides: make([][]int, k)}
	if len(dims) == 0 {
		b.inner = 1
		return b
	}
	last := dims[len(dims)-1]
	b.inner = last.size
	for j := range k {
		if last.strides[j] != 0 {
			b.istride[j] = 1
		}
	}
	dims = dims[:len(dims)-1]
	for _, d := range dims {
		b.outer = append(b.outer, d.size)
	}
	for j := range k {
		b.strides[j] = make([]int, len(dims))
		for i, d := range dims {
			b.strides[j][i] = d.strides[j]
		}
	}
	return b
}

// rows is the number of inner loops.
func (b *bcast) rows() int {
	n := 1
	for _, d := range b.outer {
		n *= d
	}
	return n
}

// run calls f for rows [lo, hi) with each input's offset of the row's first
// element and the output offset.
func (b *bcast) run(lo, hi int, f func(off []int, o int)) {
	k := len(b.strides)
	off := make([]int, k)
	idx := make([]int, len(b.outer))
	// Decompose lo.
	rem := lo
	for i := len(b.outer) - 1; i >= 0; i-- {
		idx[i] = rem % b.outer[i]
		rem /= b.outer[i]
	}
	for j := range k {
		for i, x := range idx {
			off[j] += x * b.strides[j][i]
		}
	}
	for row := lo; row < hi; row++ {
		f(off, row*b.inner)
		// Odometer increment.
		for i := len(b.outer) - 1; i >= 0; i-- {
			idx[i]++
			for j := range k {
				off[j] += b.strides[j][i]
			}
			if idx[i] < b.outer[i] {
				break
			}
			for j := range k {
				off[j] -= b.strides[j][i] * b.outer[i]
			}
			idx[i] = 0
		}
	}
}

// parallelRows runs b over all rows, split across threads when large.
func (b *bcast) parallelRows(threads int, f func(off []int, o int)) {
	rows := b.rows()
	parallelFor(threads, rows, b.inner, func(lo, hi int) { b.run(lo, hi, f) })
}
