package kernels

import (
	"errors"
	"fmt"
)

// ErrBlocks marks quantized block data whose sizes do not fit its dimensions.
var ErrBlocks = errors.New("kernels: malformed quantized blocks")

// Blocks is a K×N B operand stored as onnxruntime's MatMulNBits stores it:
// each of the N columns is cut along K into blocks of BlockSize values, each
// value an unsigned Bits-bit integer q with a per-block scale s and zero point
// z, standing for the float32 value float32(q − z)·s (one exact integer
// widening and one rounding: the value onnxruntime's kernel and a Go
// dequantize-then-multiply reference both compute).
//
//   - Packed [N, kBlocks, BlockSize·Bits/8]: 4 bits two values a byte, the
//     even one in the low nibble; 8 bits one value a byte; the last block of a
//     column padded;
//   - Scales [N·kBlocks], block index fastest;
//   - ZeroPoints nil (z = 2^(Bits−1)) or [N·ceil(kBlocks·Bits/8)] packed the
//     same way, one row of bytes per column.
//
// Blocks implements BSource: PackB decodes only the panel it is asked for, so
// the weight stays in its stored bytes (about K·N·Bits/8) and the float32
// values exist only in the packed panel, one KC×NC block at a time, which the
// multiply then reuses for every row of A.
type Blocks struct {
	Packed     []byte
	Scales     []float32
	ZeroPoints []byte
	Bits       int
	K, N       int
	BlockSize  int

	kb, blob, zpRow int
}

// NewBlocks checks the sizes of quantized block data (which may come from an
// untrusted file: nothing here or in PackB panics on accepted data) and
// returns it as a BSource. bits is 4 or 8; blockSize a power of two ≥ 16.
func NewBlocks(packed []byte, scales []float32, zeroPoints []byte, bits, K, N, blockSize int) (*Blocks, error) {
	if bits != 4 && bits != 8 {
		return nil, fmt.Errorf("%w: %d bits, want 4 or 8", ErrBlocks, bits)
	}
	if blockSize < 16 || blockSize&(blockSize-1) != 0 || blockSize > 1<<16 {
		return nil, fmt.Errorf("%w: block size %d, want a power of two from 16", ErrBlocks, blockSize)
	}
	if K <= 0 || N <= 0 || K > 1<<30 || N > 1<<30 {
		return nil, fmt.Errorf("%w: K %d, N %d", ErrBlocks, K, N)
	}
	kb := (K + blockSize - 1) / blockSize
	blob := blockSize * bits / 8
	if int64(N)*int64(kb)*int64(blob) != int64(len(packed)) {
		return nil, fmt.Errorf("%w: B has %d bytes, want N·k_blocks·block·bits/8 = %d·%d·%d", ErrBlocks, len(packed), N, kb, blob)
	}
	if len(scales) != N*kb {
		return nil, fmt.Errorf("%w: %d scales, want N·k_blocks = %d", ErrBlocks, len(scales), N*kb)
	}
	zpRow := (kb*bits + 7) / 8
	if zeroPoints != nil && len(zeroPoints) != N*zpRow {
		return nil, fmt.Errorf("%w: %d zero-point bytes, want N·ceil(k_blocks·bits/8) = %d", ErrBlocks, len(zeroPoints), N*zpRow)
	}
	return &Blocks{Packed: packed, Scales: scales, ZeroPoints: zeroPoints, Bits: bits, K: K, N: N, BlockSize: blockSize,
		kb: kb, blob: blob, zpRow: zpRow}, nil
}

// zero is the zero point of block b of column n.
func (q *Blocks) zero(n, b int) int {
	if q.ZeroPoints == nil {
		return 1 << (q.Bits - 1)
	}
	if q.Bits == 8 {
		return int(q.ZeroPoints[n*q.zpRow+b])
	}
	return int(q.ZeroPoints[n*q.zpRow+b/2]>>(4*(b&1))) & 15
}

// Dequantize returns the row-major K×N float32 matrix (for references and
// tests; the multiply never builds it).
func (q *Blocks) Dequantize() []float32 {
	w := make([]float32, q.K*q.N)
	col := make([]float32, q.K*gemmNR)
	for n := range q.N {
		q.column(col, n, 0, q.K)
		for k := range q.K {
			w[k*q.N+n] = col[k*gemmNR]
		}
	}
	return w
}

// PackB implements BSource. Full panels are decoded a block row at a time
// across their 16 columns (each packed row written as one contiguous run);
// a ragged last panel column by column.
func (q *Blocks) PackB(dst []float32, pc, jc, kc, nc, q0, q1 int) {
	for pj := q0; pj < q1; pj++ {
		panel := dst[pj*kc*gemmNR : (pj+1)*kc*gemmNR]
		c0 := pj * gemmNR
		nr := min(gemmNR, nc-c0)
		if nr == gemmNR {
			q.panel(panel, jc+c0, pc, kc)
			continue
		}
		for j := range nr {
			q.column(panel[j:], jc+c0+j, pc, kc)
		}
		for p := range kc {
			clear(panel[p*gemmNR+nr : p*gemmNR+gemmNR])
		}
	}
}

// panel decodes rows pc..pc+kc of the 16 columns from n0 into a packed
// panel, one block segment at a time (the 16 scales and zero points loaded
// once per segment), two rows per byte for 4 bits.
func (q *Blocks) panel(dst []float32, n0, pc, kc int) {
	bs := q.BlockSize
	packed := q.Packed
	var sc, zp [gemmNR]float32
	var src [gemmNR][]byte
	for k, end := pc, pc+kc; k < end; {
		b := k / bs
		i0 := k - b*bs
		cnt := min(bs-i0, end-k)
		for j := range gemmNR {
			n := n0 + j
			sc[j] = q.Scales[n*q.kb+b]
			zp[j] = float32(q.zero(n, b))
			o := (n*q.kb + b) * q.blob
			src[j] = packed[o : o+q.blob]
		}
		out := dst[(k-pc)*gemmNR : (k-pc+cnt)*gemmNR]
		if q.Bits == 8 {
			for i := range cnt {
				row := (*[gemmNR]float32)(out[i*gemmNR:])
				for j := range gemmNR {
					row[j] = (float32(src[j][i0+i]) - zp[j]) * sc[j]
				}
			}
			k += cnt
			continue
		}
		i := 0
		if i0&1 != 0 { // an odd start: the high nibbles of its bytes
			row := (*[gemmNR]float32)(out)
			for j := range gemmNR {
				row[j] = (nibble[src[j][i0>>1]>>4] - zp[j]) * sc[j]
			}
			i = 1
		}
		for ; i+1 < cnt; i += 2 {
			r0 := (*[gemmNR]float32)(out[i*gemmNR:])
			r1 := (*[gemmNR]float32)(out[(i+1)*gemmNR:])
			off := (i0 + i) >> 1
			for j := range gemmNR {
				v := src[j][off]
				z, s := zp[j], sc[j]
				r0[j] = (nibble[v&15] - z) * s
				r1[j] = (nibble[v>>4] - z) * s
			}
		}
		if i < cnt { // an odd end: the low nibbles
			row := (*[gemmNR]float32)(out[i*gemmNR:])
			for j := range gemmNR {
				row[j] = (nibble[src[j][(i0+i)>>1]&15] - zp[j]) * sc[j]
			}
		}
		k += cnt
	}
}

// nibble is float32(v) for each 4-bit v.
var nibble = [16]float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// column writes rows pc..pc+kc of column n to dst[0], dst[16], dst[32], ...
func (q *Blocks) column(dst []float32, n, pc, kc int) {
	bs := q.BlockSize
	for k, end := pc, pc+kc; k < end; {
		b := k / bs
		i0 := k - b*bs
		cnt := min(bs-i0, end-k)
		s := q.Scales[n*q.kb+b]
		z := q.zero(n, b)
		src := q.Packed[(n*q.kb+b)*q.blob : (n*q.kb+b+1)*q.blob]
		d := dst[(k-pc)*gemmNR:]
		if q.Bits == 8 {
			src = src[i0 : i0+cnt]
			_ = d[(cnt-1)*gemmNR]
			for i, v := range src {
				d[i*gemmNR] = float32(int(v)-z) * s
			}
		} else {
			i := 0
			if i0&1 != 0 { // an odd start: the high nibble of its byte
				d[0] = float32(int(src[i0/2]>>4)-z) * s
				i = 1
			}
			pairs := src[(i0+i)/2 : (i0+cnt)/2]
			if len(pairs) > 0 {
				_ = d[(i+2*len(pairs)-1)*gemmNR]
			}
			for _, v := range pairs {
				d[i*gemmNR] = float32(int(v&15)-z) * s
				d[(i+1)*gemmNR] = float32(int(v>>4)-z) * s
				i += 2
			}
			if i < cnt { // an odd end: the low nibble
				d[i*gemmNR] = float32(int(src[(i0+i)/2]&15)-z) * s
			}
		}
		k += cnt
	}
}

// Int8B is a K×N B operand of 8-bit integers (int8 or uint8) stored
// row-major, with a zero point for the whole matrix (len 1) or per column (len
// N): PackB writes float32(B[k][n] − zp), exact. MatMulInteger multiplies in
// float32 over K chunks short enough that every partial sum is an exact
// integer (see ExactIntK).
type Int8B[T int8 | uint8] struct {
	Data []T
	Off  int // element offset of row 0
	RS   int // row stride (N for a row-major matrix)
	ZP   []int32
}

// ExactIntK is the longest K over which a float32 multiply of 8-bit integers
// less their zero points (each |x| ≤ 255) sums exactly in any order:
// 256·255² < 2^24.
const ExactIntK = 256

// PackB implements BSource.
func (b Int8B[T]) PackB(dst []float32, pc, jc, kc, nc, q0, q1 int) {
	for pj := q0; pj < q1; pj++ {
		panel := dst[pj*kc*gemmNR : (pj+1)*kc*gemmNR]
		c0 := jc + pj*gemmNR
		nr := min(gemmNR, nc-pj*gemmNR)
		for p := range kc {
			row := b.Data[b.Off+(pc+p)*b.RS+c0 : b.Off+(pc+p)*b.RS+c0+nr]
			d := panel[p*gemmNR : p*gemmNR+gemmNR]
			if len(b.ZP) == 1 {
				z := b.ZP[0]
				for j, v := range row {
					d[j] = float32(int32(v) - z)
				}
			} else {
				zp := b.ZP[c0 : c0+nr]
				for j, v := range row {
					d[j] = float32(int32(v) - zp[j])
				}
			}
			clear(d[nr:])
		}
	}
}
