package kernels

import (
	"math"

	"github.com/onnxslm/onnxslm/internal/half"
)

// HalfView is a B operand kept as 16-bit floats, IEEE binary16 (float16) or
// bfloat16, as a model stores its weights: element (i, j) is
// Data[Off+i*RS+j*CS], strided and transposed as MatView is. Its PackB widens
// exactly the block the matmul asks for, so SgemmB with a HalfView gives
// results bitwise equal to widening the whole matrix first and calling Sgemm,
// while the matrix costs 2 bytes an element. Data is only read (it may be a
// read-only mapping of the model file).
type HalfView struct {
	Data   []uint16
	Off    int
	RS, CS int
	BF16   bool // bfloat16 rather than float16
}

// HalfToFloat32 widens src (float16, or bfloat16 when bf16) into dst[:len(src)],
// with F16C/AVX2 where the CPU has them (internal/half). Widening is exact,
// bitwise as Float16ToFloat32 / BFloat16ToFloat32, NaN payloads included
// (PackB's row-major panels may still quiet a signalling NaN).
func HalfToFloat32(dst []float32, src []uint16, bf16 bool) {
	dst = dst[:len(src)]
	if bf16 {
		widenBF16(dst, src)
	} else {
		widenF16(dst, src)
	}
}

// Float16ToFloat32 widens one float16 value given by its bits (exact; NaN
// payloads kept).
func Float16ToFloat32(h uint16) float32 { return half.ToFloat32(h) }

// BFloat16ToFloat32 widens one bfloat16 value given by its bits (exact).
func BFloat16ToFloat32(h uint16) float32 { return half.BFloat16ToFloat32(h) }

// widenF16 and widenBF16 convert len(src) values: internal/half's slice
// conversions, vector code where the CPU has it (one home for it); tests set
// the Go loops below instead.
var (
	widenF16  = half.WidenBits
	widenBF16 = half.WidenBF16Bits
)

func widenF16Go(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = Float16ToFloat32(h)
	}
}

func widenBF16Go(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

// packHalfRows, where available, widens one full 16-column panel of a
// row-major 16-bit B: dst[16p : 16p+16] = widen(src[p*lds : p*lds+16]) for
// p < kc.
var packHalfRows func(dst []float32, src []uint16, kc, lds int, bf16 bool)

func packHalfRowsGo(dst []float32, src []uint16, kc, lds int, bf16 bool) {
	for p := range kc {
		HalfToFloat32(dst[p*gemmNR:p*gemmNR+gemmNR], src[p*lds:p*lds+gemmNR], bf16)
	}
}

// interleave16 writes panel row p (16 values) from the 16 columns of cols,
// column j at cols[j*kc:]: panel[p*16+j] = cols[j*kc+p].
func interleave16(panel, cols []float32, kc int) {
	c0, c1, c2, c3 := cols[0*kc:1*kc], cols[1*kc:2*kc], cols[2*kc:3*kc], cols[3*kc:4*kc]
	c4, c5, c6, c7 := cols[4*kc:5*kc], cols[5*kc:6*kc], cols[6*kc:7*kc], cols[7*kc:8*kc]
	c8, c9, c10, c11 := cols[8*kc:9*kc], cols[9*kc:10*kc], cols[10*kc:11*kc], cols[11*kc:12*kc]
	c12, c13, c14, c15 := cols[12*kc:13*kc], cols[13*kc:14*kc], cols[14*kc:15*kc], cols[15*kc:16*kc]
	for p := range kc {
		d := panel[p*gemmNR : p*gemmNR+gemmNR : p*gemmNR+gemmNR]
		d[0], d[1], d[2], d[3] = c0[p], c1[p], c2[p], c3[p]
		d[4], d[5], d[6], d[7] = c4[p], c5[p], c6[p], c7[p]
		d[8], d[9], d[10], d[11] = c8[p], c9[p], c10[p], c11[p]
		d[12], d[13], d[14], d[15] = c12[p], c13[p], c14[p], c15[p]
	}
}

// PackB implements BSource: panels q0..q1 of B[pc:pc+kc, jc:jc+nc], widened
// into the layout packB writes for float32 (see BSource).
func (b HalfView) PackB(dst []float32, pc, jc, kc, nc, q0, q1 int) {
	rowsFn := packHalfRows
	if rowsFn == nil {
		rowsFn = packHalfRowsGo
	}
	var col *[]float32 // the widened columns of a transposed B
	defer func() {
		if col != nil {
			packPool.Put(col)
		}
	}()
	for pj := q0; pj < q1; pj++ {
		p0 := pj * gemmNR
		nr := min(gemmNR, nc-p0)
		panel := dst[pj*kc*gemmNR : (pj+1)*kc*gemmNR]
		base := b.Off + pc*b.RS + (jc+p0)*b.CS
		switch {
		case b.CS == 1 && nr == gemmNR:
			// Row-major: each k row of the panel is 16 contiguous values.
			rowsFn(panel, b.Data[base:], kc, b.RS, b.BF16)
		case b.CS == 1:
			for p := range kc {
				d := panel[p*gemmNR : p*gemmNR+gemmNR]
				HalfToFloat32(d, b.Data[base+p*b.RS:base+p*b.RS+nr], b.BF16)
				clear(d[nr:])
			}
		case b.RS == 1:
			// Transposed (a [n, k] weight read as B): each column is kc
			// contiguous values. All nr columns are widened at once into
			// cols (column j at j*kc), then interleaved a k row at a time.
			if col == nil {
				col = getPack(gemmNR * kc)
			}
			cols := (*col)[:gemmNR*kc]
			for j := range nr {
				o := base + j*b.CS
				HalfToFloat32(cols[j*kc:(j+1)*kc], b.Data[o:o+kc], b.BF16)
			}
			clear(cols[nr*kc:])
			interleave16(panel, cols, kc)
		default:
			conv := Float16ToFloat32
			if b.BF16 {
				conv = BFloat16ToFloat32
			}
			for p := range kc {
				d := panel[p*gemmNR : p*gemmNR+gemmNR]
				o := base + p*b.RS
				for j := range nr {
					d[j] = conv(b.Data[o+j*b.CS])
				}
				clear(d[nr:])
			}
		}
	}
}
