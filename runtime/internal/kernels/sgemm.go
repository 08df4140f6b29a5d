package kernels

import (
	"sync"
)

// Blocking of the float32 matrix multiply (GotoBLAS/BLIS layout): C is
// computed in MR×NR tiles by a microkernel that streams an MR-row panel of A
// and an NR-column panel of B, both packed contiguously; KC×NC blocks of B and
// MC×KC blocks of A are packed once per block, so the microkernel reads only
// L1/L2-resident memory. Packing also absorbs transposes and strides: any
// row/column stride of A and B costs the same.
const (
	gemmMR = 6
	gemmNR = 16
	gemmKC = 256
	gemmMC = 96
	gemmNC = 2048
)

// MatView is a strided float32 matrix operand: element (i, j) is
// Data[Off+i*RS+j*CS]. Transposes are views (RS 1, CS the row length).
type MatView struct {
	Data   []float32
	Off    int
	RS, CS int // row and column strides, in elements
}

var packPool = sync.Pool{New: func() any { return new([]float32) }}

func getPack(n int) *[]float32 {
	p := packPool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// Sgemm computes C = alpha·A·B + beta·C, with A m×k, B k×n and C m×n stored
// row-major with leading dimension ldc, on up to threads goroutines. The
// result does not depend on threads (each C element is summed in the same
// order whatever the split).
func Sgemm(threads, m, n, k int, alpha float32, a, b MatView, beta float32, c []float32, ldc int) {
	sgemm(threads, m, n, k, alpha, a, b, beta, c, ldc)
}

// BSource is a B operand kept in its stored format (float16, bfloat16, int8,
// 4-bit blocks with scales, ...): the matmul never reads B except through
// PackB, which widens the block it is asked for to float32 while writing the
// packed panels. A source therefore costs its stored bytes in memory, never a
// float32 copy of the whole matrix. MatView is the float32 source.
//
// PackB writes panels q0..q1 (NR = 16 columns each) of B[pc:pc+kc, jc:jc+nc]
// into dst: panel q starts at dst[q*kc*16:], row p of it at +p*16, and
// columns past nc are zero. It is called concurrently for disjoint panel
// ranges of the same block and must not keep dst.
type BSource interface {
	PackB(dst []float32, pc, jc, kc, nc, q0, q1 int)
}

// PanelWidth is the number of B columns in one packed panel (NR).
const PanelWidth = gemmNR

// PackB implements BSource for a float32 view.
func (b MatView) PackB(dst []float32, pc, jc, kc, nc, q0, q1 int) {
	packB(dst, b, pc, jc, kc, nc, q0, q1)
}

// SgemmB is Sgemm with B read through a BSource. With a MatView it computes
// exactly what Sgemm does; a source whose PackB widens exactly (float16,
// bfloat16 and integer blocks all do) gives results bitwise equal to widening
// B first and calling Sgemm.
func SgemmB(threads, m, n, k int, alpha float32, a MatView, b BSource, beta float32, c []float32, ldc int) {
	sgemm(threads, m, n, k, alpha, a, b, beta, c, ldc)
}

// sgemm is generic in the source so that Sgemm's MatView is not boxed (no
// allocation per call) while SgemmB takes any source.
func sgemm[S BSource](threads, m, n, k int, alpha float32, a MatView, b S, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if beta != 1 && beta != 0 {
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
	}
	if k == 0 || alpha == 0 {
		if beta == 0 {
			for i := range m {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	if threads < 1 {
		threads = 1
	}
	// Small problems: no goroutines.
	if m*n*k < 1<<16 {
		threads = 1
	}
	for jc := 0; jc < n; jc += gemmNC {
		nc := min(gemmNC, n-jc)
		panels := (nc + gemmNR - 1) / gemmNR
		for pc := 0; pc < k; pc += gemmKC {
			kc := min(gemmKC, k-pc)
			bp := getPack(panels * kc * gemmNR)
			mblocks := (m + gemmMC - 1) / gemmMC
			// Pack B, in parallel chunks of panels when it is large.
			if chunks := min(4*threads, panels/8); threads > 1 && chunks > 1 && mblocks*gemmMC*kc*nc >= 1<<20 {
				Tasks(threads, chunks, func(t int) {
					b.PackB(*bp, pc, jc, kc, nc, t*panels/chunks, (t+1)*panels/chunks)
				})
			} else {
				b.PackB(*bp, pc, jc, kc, nc, 0, panels)
			}
			// Tasks: M blocks, times column ranges when M blocks alone are
			// too few to balance the threads (about four tasks per thread,
			// handed out as threads come free).
			cols := 1
			if want := 4 * threads; threads > 1 && mblocks < want {
				cols = max(1, min(panels/2, (want+mblocks-1)/mblocks))
			}
			tasks := mblocks * cols
			// Row-major A with alpha 1 is read in place (no packing of A);
			// only a ragged last panel of rows is packed.
			direct := microKernelRows != nil && a.CS == 1 && alpha == 1
			run := func(t int) {
				ib, cb := t/cols, t%cols
				ic := ib * gemmMC
				mc := min(gemmMC, m-ic)
				p0, p1 := panelBound(cb, cols, panels), panelBound(cb+1, cols, panels)
				// With beta = 0 the first K block overwrites C (no clearing).
				acc := pc > 0 || beta != 0
				if direct {
					macroKernelRows(a, *bp, c, ldc, ic, jc, pc, mc, nc, kc, p0, p1, acc)
					return
				}
				ap := getPack(((mc + gemmMR - 1) / gemmMR) * gemmMR * kc)
				packA(*ap, a, alpha, ic, pc, mc, kc)
				macroKernel(*ap, *bp, c, ldc, ic, jc, mc, nc, kc, p0, p1, acc)
				packPool.Put(ap)
			}
			if threads == 1 || tasks == 1 {
				for t := range tasks {
					run(t)
				}
			} else {
				Tasks(threads, tasks, run)
			}
			packPool.Put(bp)
		}
	}
}

// panelBound is where column range cb of cols starts, in panels: an even
// number (so that the two-panel kernels are not split), or panels at the end.
func panelBound(cb, cols, panels int) int {
	if cb >= cols {
		return panels
	}
	return cb * panels / cols &^ 1
}

// packRows, where available, copies np ≤ 4 full panels of kc rows of a
// row-major B (rows lds apart) into packed panels dps apart.
var packRows func(dst, src []float32, kc, np, lds, dps int)

// packB packs panels q0..q1 of B[pc:pc+kc, jc:jc+nc] as NR-column panels,
// each kc rows of NR contiguous float32 values (zero-padded past nc).
//
// packB is the only place that reads B: the microkernels see only the packed
// panels it writes. B is therefore free to be stored in another format as long
// as packB widens it to float32 here. A weight kept as float16, bfloat16, int8
// or 4-bit blocks (with their scales) plugs in as a BSource (SgemmB) whose
// PackB decodes rows p = pc..pc+kc-1, columns jc+pj*NR.. of its blocks into the same
// panel layout (panel pj at dst[pj*kc*NR:], row p at +p*NR, columns past nc
// zero). Everything after packing (macroKernel, the assembly kernels, the
// order of the sums, hence the results for float32 B) stays as it is. The
// row-major fast path (packRows, four panels per k row) is the float32 case of
// that widening.
func packB(dst []float32, b MatView, pc, jc, kc, nc, q0, q1 int) {
	full := min(q1, nc/gemmNR)
	if b.CS == 1 && full > q0 {
		// Row-major B: four panels at a time, so that each k row is read as
		// 256 contiguous bytes and written as four 64-byte runs.
		base := b.Off + pc*b.RS + jc
		for g := q0; g < full; g += 4 {
			np := min(4, full-g)
			if packRows != nil {
				packRows(dst[g*kc*gemmNR:], b.Data[base+g*gemmNR:], kc, np, b.RS, kc*gemmNR)
				continue
			}
			for p := range kc {
				src := b.Data[base+p*b.RS+g*gemmNR : base+p*b.RS+(g+np)*gemmNR]
				for q := range np {
					d := dst[(g+q)*kc*gemmNR+p*gemmNR:]
					*(*[gemmNR]float32)(d) = *(*[gemmNR]float32)(src[q*gemmNR:])
				}
			}
		}
	} else {
		full = q0
	}
	for pj := max(full, q0); pj < q1; pj++ {
		p0 := pj * gemmNR
		nr := min(gemmNR, nc-p0)
		panel := dst[pj*kc*gemmNR:]
		base := b.Off + pc*b.RS + (jc+p0)*b.CS
		if b.CS == 1 {
			for p := range kc {
				src := b.Data[base+p*b.RS : base+p*b.RS+nr]
				d := panel[p*gemmNR : p*gemmNR+gemmNR]
				copy(d, src)
				clear(d[nr:])
			}
			continue
		}
		for p := range kc {
			d := panel[p*gemmNR : p*gemmNR+gemmNR]
			o := base + p*b.RS
			for j := range nr {
				d[j] = b.Data[o+j*b.CS]
			}
			clear(d[nr:])
		}
	}
}

// packA packs alpha·A[ic:ic+mc, pc:pc+kc] as MR-row panels, each kc columns of
// MR contiguous values (zero-padded past mc).
func packA(dst []float32, a MatView, alpha float32, ic, pc, mc, kc int) {
	for i0 := 0; i0 < mc; i0 += gemmMR {
		mr := min(gemmMR, mc-i0)
		panel := dst[(i0/gemmMR)*kc*gemmMR : (i0/gemmMR+1)*kc*gemmMR]
		o := a.Off + (ic+i0)*a.RS + pc*a.CS
		switch {
		case mr == gemmMR && a.CS == 1:
			// Six row streams in, one sequential stream out.
			r0 := a.Data[o : o+kc]
			r1 := a.Data[o+a.RS : o+a.RS+kc]
			r2 := a.Data[o+2*a.RS : o+2*a.RS+kc]
			r3 := a.Data[o+3*a.RS : o+3*a.RS+kc]
			r4 := a.Data[o+4*a.RS : o+4*a.RS+kc]
			r5 := a.Data[o+5*a.RS : o+5*a.RS+kc]
			for p := range r0 {
				q := (*[gemmMR]float32)(panel[p*gemmMR : p*gemmMR+gemmMR])
				q[0], q[1], q[2], q[3], q[4], q[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
			}
		case mr == gemmMR && a.RS == 1:
			// Transposed A: each k step is six contiguous values.
			for p := range kc {
				copy(panel[p*gemmMR:p*gemmMR+gemmMR], a.Data[o+p*a.CS:o+p*a.CS+gemmMR])
			}
		default:
			for p := range kc {
				q := panel[p*gemmMR : p*gemmMR+gemmMR]
				for i := range mr {
					q[i] = a.Data[o+i*a.RS+p*a.CS]
				}
				clear(q[mr:])
			}
		}
		if alpha != 1 {
			for i := range panel {
				panel[i] *= alpha
			}
		}
	}
}

// macroKernel multiplies a packed A block (mc×kc) by NR-panels p0..p1 of a
// packed B block, accumulating into C at (ic, jc).
func macroKernel(ap, bp, c []float32, ldc, ic, jc, mc, nc, kc, p0, p1 int, acc bool) {
	var tmp edgeTile
	defer tmp.free()
	pstride := kc * gemmNR
	for pj := p0; pj < p1; pj++ {
		j0 := pj * gemmNR
		// Two full panels at once where the CPU has the wide kernel.
		pair := microKernel2 != nil && pj+1 < p1 && j0+2*gemmNR <= nc
		for i0 := 0; i0 < mc; i0 += gemmMR {
			mr := min(gemmMR, mc-i0)
			apanel := ap[(i0/gemmMR)*kc*gemmMR : (i0/gemmMR+1)*kc*gemmMR]
			co := (ic+i0)*ldc + jc + j0
			if mr == gemmMR && pair {
				microKernel2(kc, apanel, bp[pj*pstride:(pj+2)*pstride], pstride, c[co:], ldc, acc)
				continue
			}
			for q := range 1 + boolInt(pair) {
				bq := bp[(pj+q)*pstride : (pj+q+1)*pstride]
				cq := co + q*gemmNR
				nq := min(gemmNR, nc-j0-q*gemmNR)
				if mr == gemmMR && nq == gemmNR {
					microKernel(kc, apanel, bq, c[cq:], ldc, acc)
					continue
				}
				t := tmp.get()
				microKernel(kc, apanel, bq, t, gemmNR, false)
				addTile(c, cq, ldc, t, mr, nq, acc)
			}
		}
		if pair {
			pj++
		}
	}
}

// edgeTile is the 6×16 scratch tile of a ragged edge, taken from packPool on
// first use (a local array would escape to the heap through the kernel
// function values on every call).
type edgeTile struct{ p *[]float32 }

func (e *edgeTile) get() []float32 {
	if e.p == nil {
		e.p = getPack(gemmMR * gemmNR)
	}
	return *e.p
}

func (e *edgeTile) free() {
	if e.p != nil {
		packPool.Put(e.p)
	}
}

// addTile adds (acc) or copies the mr×nr corner of a 6×16 tile into C at co.
func addTile(c []float32, co, ldc int, tmp []float32, mr, nr int, acc bool) {
	for i := range mr {
		row := c[co+i*ldc : co+i*ldc+nr]
		t := tmp[i*gemmNR : i*gemmNR+nr]
		if acc {
			for j := range row {
				row[j] += t[j]
			}
		} else {
			copy(row, t)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// macroKernelRows is macroKernel for a row-major A read in place (alpha 1):
// full six-row panels go to microKernelRows; a ragged last panel is packed.
func macroKernelRows(a MatView, bp, c []float32, ldc, ic, jc, pc, mc, nc, kc, p0, p1 int, acc bool) {
	full := mc / gemmMR * gemmMR
	var edge []float32
	if full < mc {
		ep := getPack(gemmMR * kc)
		defer packPool.Put(ep)
		edge = *ep
		packA(edge, a, 1, ic+full, pc, mc-full, kc)
	}
	var tmp edgeTile
	defer tmp.free()
	pstride := kc * gemmNR
	for pj := p0; pj < p1; {
		j0 := pj * gemmNR
		// Two full panels at once where the CPU has the wide kernel.
		w := 1
		if microKernelRows2 != nil && pj+1 < p1 && j0+2*gemmNR <= nc {
			w = 2
		}
		for i0 := 0; i0 < mc; i0 += gemmMR {
			mr := min(gemmMR, mc-i0)
			co := (ic+i0)*ldc + jc + j0
			arow := a.Off + (ic+i0)*a.RS + pc
			if mr == gemmMR && w == 2 {
				microKernelRows2(kc, a.Data[arow:], a.RS, bp[pj*pstride:(pj+2)*pstride], pstride, c[co:], ldc, acc)
				continue
			}
			for q := range w {
				bq := bp[(pj+q)*pstride : (pj+q+1)*pstride]
				cq := co + q*gemmNR
				nq := min(gemmNR, nc-j0-q*gemmNR)
				if mr == gemmMR && nq == gemmNR {
					microKernelRows(kc, a.Data[arow:], a.RS, bq, c[cq:], ldc, acc)
					continue
				}
				t := tmp.get()
				if mr == gemmMR {
					microKernelRows(kc, a.Data[arow:], a.RS, bq, t, gemmNR, false)
				} else {
					microKernel(kc, edge, bq, t, gemmNR, false)
				}
				addTile(c, cq, ldc, t, mr, nq, acc)
			}
		}
		pj += w
	}
}

// microKernelGo is the portable microkernel: C[0:6, 0:16] (+)= Ap·Bp over kc.
func microKernelGo(kc int, a, b, c []float32, ldc int, accumulate bool) {
	var sum [gemmMR][gemmNR]float32
	a = a[:kc*gemmMR]
	b = b[:kc*gemmNR]
	for p := range kc {
		ar := a[p*gemmMR : p*gemmMR+gemmMR]
		br := (*[gemmNR]float32)(b[p*gemmNR : p*gemmNR+gemmNR])
		for i := range gemmMR {
			x := ar[i]
			r := &sum[i]
			for j := range gemmNR {
				r[j] += x * br[j]
			}
		}
	}
	for i := range gemmMR {
		row := c[i*ldc : i*ldc+gemmNR]
		if !accumulate {
			copy(row, sum[i][:])
			continue
		}
		for j := range row {
			row[j] += sum[i][j]
		}
	}
}
