package runtime

import (
	"unsafe"
)

// rawBytes views t's data as bytes (shared). Go's bool is one byte, 0 or 1.
func rawBytes(t *Tensor) []byte {
	n := numel(t.shape) * t.dtype.size()
	if n == 0 {
		return nil
	}
	var p unsafe.Pointer
	if dt := dtypeOf(t.data); dt != Invalid {
		p = dtypes[dt].ptr(t.data)
	}
	return unsafe.Slice((*byte)(p), n)
}

// stridedCopy fills dst (contiguous, row-major over shape) from src, where
// element idx of dst is src element base + Σ idx[i]*strides[i] (strides in
// elements, possibly zero or negative). es is the element size in bytes.
func stridedCopy(threads int, dst, src []byte, es int, shape, strides []int, base int) {
	if numel(shape) == 0 {
		return
	}
	// Drop unit dims, then merge dims that continue each other.
	var sh, st []int
	for i, d := range shape {
		if d == 1 {
			continue
		}
		if n := len(sh); n > 0 && st[n-1] == strides[i]*d {
			sh[n-1] *= d
			st[n-1] = strides[i]
			continue
		}
		sh = append(sh, d)
		st = append(st, strides[i])
	}
	if len(sh) == 0 {
		copy(dst[:es], src[base*es:base*es+es])
		return
	}
	inner := sh[len(sh)-1]
	istride := st[len(st)-1]
	outer, ost := sh[:len(sh)-1], st[:len(st)-1]
	rows := numel(outer)
	rowBytes := inner * es
	copyRow := func(d []byte, s int) {
		switch {
		case istride == 1:
			copy(d, src[s*es:s*es+rowBytes])
		case es == 4:
			dd := unsafe.Slice((*uint32)(unsafe.Pointer(&d[0])), inner)
			ss := unsafe.Slice((*uint32)(unsafe.Pointer(&src[0])), len(src)/4)
			for i := range dd {
				dd[i] = ss[s+i*istride]
			}
		case es == 8:
			dd := unsafe.Slice((*uint64)(unsafe.Pointer(&d[0])), inner)
			ss := unsafe.Slice((*uint64)(unsafe.Pointer(&src[0])), len(src)/8)
			for i := range dd {
				dd[i] = ss[s+i*istride]
			}
		case es == 1:
			for i := range inner {
				d[i] = src[s+i*istride]
			}
		default:
			for i := range inner {
				o := (s + i*istride) * es
				copy(d[i*es:(i+1)*es], src[o:o+es])
			}
		}
	}
	parallelFor(threads, rows, inner, func(lo, hi int) {
		w := newOdometer(outer, ost, base, lo)
		for r := lo; r < hi; r++ {
			copyRow(dst[r*rowBytes:(r+1)*rowBytes], w.off)
			w.next()
		}
	})
}

// odometer walks the multi-indices of dims in row-major order, keeping the
// offset off = base + Σ idx[i]·st[i] of the current one. The zero odometer
// stays at offset 0.
type odometer struct {
	idx, dims, st []int
	off           int
}

// newOdometer starts at pos, the row-major position of a multi-index of dims.
func newOdometer(dims, st []int, base, pos int) odometer {
	o := odometer{idx: make([]int, len(dims)), dims: dims, st: st, off: base}
	for i := len(dims) - 1; i >= 0; i-- {
		o.idx[i] = pos % dims[i]
		pos /= dims[i]
		o.off += o.idx[i] * st[i]
	}
	return o
}

// next steps to the following multi-index.
func (o *odometer) next() {
	for i := len(o.dims) - 1; i >= 0; i-- {
		o.idx[i]++
		o.off += o.st[i]
		if o.idx[i] < o.dims[i] {
			return
		}
		o.off -= o.st[i] * o.dims[i]
		o.idx[i] = 0
	}
}

// permutedOutput is how a kernel writes its logical result of shape full
// straight into a transposed output (a Transpose fused after it): the output's
// shape (axis i is full's axis perm[i]) and, for each logical axis, its stride
// in the output.
func permutedOutput(full, perm []int) (shape, strides []int) {
	shape = make([]int, len(perm))
	for i, p := range perm {
		shape[i] = full[p]
	}
	ps := stridesOf(shape)
	strides = make([]int, len(perm))
	for i, p := range perm {
		strides[p] = ps[i]
	}
	return shape, strides
}

// stridesOf returns the row-major element strides of shape.
func stridesOf(shape []int) []int {
	st := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= shape[i]
	}
	return st
}
