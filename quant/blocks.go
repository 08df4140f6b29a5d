// Package quant packs and unpacks quantized weights in the layouts deployed ONNX
// LLMs store them in: blockwise 4- and 8-bit (onnxruntime's com.microsoft
// MatMulNBits, as its MatMulNBitsQuantizer writes it) and per-tensor symmetric
// int8 (onnxruntime's dynamic quantizer, MatMulInteger). The unpackers take
// bytes from untrusted files: every size is checked, nothing panics.
package quant

import (
	"errors"
	"fmt"
	"math"
)

// Blockwise layout (onnxruntime/python/tools/quantization/matmul_nbits_quantizer.py,
// which calls MLAS's MlasQuantizeBlockwise through quantize_matmul_4bits and
// quantize_matmul_8bits):
//
//   - the MatMul weight B is [K, N] (y = x·B); each column n is cut along K
//     into ceil(K/block) blocks, the last one padded with zeros;
//   - packed B is uint8 [N, k_blocks, block·bits/8]: block values in K order;
//     4-bit: two per byte, the even one in the low nibble;
//   - scales is [N·k_blocks] in A's type, block index fastest;
//   - symmetric (the default): scale = v / −2^(bits−1) where v is the block's
//     value of largest magnitude (sign kept), q = clamp(round(x/scale + mid),
//     0, 2^bits − 1) with mid = 2^(bits−1); no zero points (mid implied);
//   - asymmetric: lo = min(min, 0), hi = max(max, 0), scale = (hi − lo)/(2^bits − 1),
//     zp = clamp(round(−lo/scale), 0, 2^bits − 1), q = clamp(round(x/scale + zp), …);
//     zero points uint8 [N·ceil(k_blocks·bits/8)], 4-bit ones two per byte,
//     low nibble first;
//   - x ≈ (q − zp)·scale.

// Blocks is a MatMul weight [K, N] quantized blockwise in MatMulNBits's layout.
type Blocks struct {
	Bits, K, N, BlockSize int
	Packed                []byte    // [N, KBlocks, BlockSize·Bits/8]
	Scales                []float32 // [N·KBlocks]
	ZeroPoints            []byte    // [N·ceil(KBlocks·Bits/8)], nil when symmetric
}

// KBlocks is the number of blocks along K.
func (q *Blocks) KBlocks() int { return (q.K + q.BlockSize - 1) / q.BlockSize }

// ErrBlocks marks malformed blockwise quantized data.
var ErrBlocks = errors.New("quant: bad blockwise quantized weight")

// MaxDim bounds K, N and the block size (K·N then fits an int everywhere).
const MaxDim = 1 << 24

// CheckDims validates the dimensions of a blockwise quantized weight.
func CheckDims(bits, K, N, block int) error {
	if bits != 4 && bits != 8 {
		return fmt.Errorf("%w: %d bits, want 4 or 8", ErrBlocks, bits)
	}
	if K < 1 || N < 1 {
		return fmt.Errorf("%w: K=%d N=%d, want both positive", ErrBlocks, K, N)
	}
	if block < 16 || block&(block-1) != 0 {
		return fmt.Errorf("%w: block size %d, want a power of 2 ≥ 16", ErrBlocks, block)
	}
	if K > MaxDim || N > MaxDim || block > MaxDim {
		return fmt.Errorf("%w: K=%d N=%d block=%d, each at most %d", ErrBlocks, K, N, block, MaxDim)
	}
	return nil
}

// ZeroPointBytes is the number of zero-point bytes of one column.
func ZeroPointBytes(bits, kBlocks int) int { return (kBlocks*bits + 7) / 8 }

// QuantizeBlocks quantizes w, row-major [K, N], to bits (4 or 8) in blocks of
// block values along K, symmetric unless asymmetric is set.
func QuantizeBlocks(w []float32, bits, K, N, block int, asymmetric bool) (*Blocks, error) {
	if err := CheckDims(bits, K, N, block); err != nil {
		return nil, err
	}
	if len(w) != K*N {
		return nil, fmt.Errorf("%w: %d weights for [%d, %d]", ErrBlocks, len(w), K, N)
	}
	q := &Blocks{Bits: bits, K: K, N: N, BlockSize: block}
	kb := q.KBlocks()
	blob := block * bits / 8
	qmax := 1<<bits - 1
	q.Packed = make([]byte, N*kb*blob)
	q.Scales = make([]float32, N*kb)
	if asymmetric {
		q.ZeroPoints = make([]byte, N*ZeroPointBytes(bits, kb))
	}
	for n := 0; n < N; n++ {
		for b := 0; b < kb; b++ {
			lo, hi := float32(0), float32(0)
			first := true
			for k := b * block; k < (b+1)*block && k < K; k++ {
				v := w[k*N+n]
				if first || v < lo {
					lo = v
				}
				if first || v > hi {
					hi = v
				}
				first = false
			}
			var scale float32
			zp := 1 << (bits - 1)
			if asymmetric {
				lo, hi = min(lo, 0), max(hi, 0)
				scale = (hi - lo) / float32(qmax)
				zf := lo
				if scale != 0 {
					zf = -lo / scale
				}
				zp = int(min(max(math.Round(float64(zf)), 0), float64(qmax)))
				q.setZP(n, b, zp)
			} else {
				v := lo
				if abs32(hi) > abs32(lo) {
					v = hi
				}
				scale = v / -float32(int(1)<<(bits-1))
			}
			q.Scales[n*kb+b] = scale
			var inv float32
			if scale != 0 {
				inv = 1 / scale
			}
			for i := 0; i < block; i++ {
				k := b*block + i
				var x float32 // padding beyond K quantizes zeros
				if k < K {
					x = w[k*N+n]
				}
				v := int(min(max(math.Round(float64(x*inv+float32(zp))), 0), float64(qmax)))
				if bits == 8 {
					q.Packed[(n*kb+b)*blob+i] = byte(v)
				} else {
					q.Packed[(n*kb+b)*blob+i/2] |= byte(v) << (4 * (i % 2))
				}
			}
		}
	}
	return q, nil
}

func (q *Blocks) setZP(n, b, zp int) {
	row := n * ZeroPointBytes(q.Bits, q.KBlocks())
	if q.Bits == 8 {
		q.ZeroPoints[row+b] = byte(zp)
		return
	}
	q.ZeroPoints[row+b/2] |= byte(zp) << (4 * (b % 2))
}

func abs32(v float32) float32 { return float32(math.Abs(float64(v))) }

// DequantizeBlocks unpacks blockwise data in MatMulNBits's layout (B
// [N, k_blocks, block·bits/8], scales [N·k_blocks], zero points nil or
// [N·ceil(k_blocks·bits/8)]) to the row-major [K, N] float weight. The bytes
// may come from an untrusted file: every size is checked, nothing panics.
func DequantizeBlocks(packed []byte, scales []float32, zeroPoints []byte, bits, K, N, block int) ([]float32, error) {
	if err := CheckDims(bits, K, N, block); err != nil {
		return nil, err
	}
	kb := (K + block - 1) / block
	blob := block * bits / 8
	if len(packed) != N*kb*blob {
		return nil, fmt.Errorf("%w: B has %d bytes, want N·k_blocks·block·bits/8 = %d·%d·%d", ErrBlocks, len(packed), N, kb, blob)
	}
	if len(scales) != N*kb {
		return nil, fmt.Errorf("%w: %d scales, want N·k_blocks = %d", ErrBlocks, len(scales), N*kb)
	}
	zpRow := ZeroPointBytes(bits, kb)
	if zeroPoints != nil && len(zeroPoints) != N*zpRow {
		return nil, fmt.Errorf("%w: %d zero-point bytes, want N·ceil(k_blocks·bits/8) = %d", ErrBlocks, len(zeroPoints), N*zpRow)
	}
	w := make([]float32, K*N)
	for n := 0; n < N; n++ {
		for b := 0; b < kb; b++ {
			zp := 1 << (bits - 1)
			if zeroPoints != nil {
				if bits == 8 {
					zp = int(zeroPoints[n*zpRow+b])
				} else {
					zp = int(zeroPoints[n*zpRow+b/2]>>(4*(b%2))) & 15
				}
			}
			s := scales[n*kb+b]
			for i := 0; i < block; i++ {
				k := b*block + i
				if k >= K {
					break
				}
				var v int
				if bits == 8 {
					v = int(packed[(n*kb+b)*blob+i])
				} else {
					v = int(packed[(n*kb+b)*blob+i/2]>>(4*(i%2))) & 15
				}
				w[k*N+n] = float32(v-zp) * s
			}
		}
	}
	return w, nil
}

// Dequantize returns the [K, N] weight that q stands for.
func (q *Blocks) Dequantize() ([]float32, error) {
	return DequantizeBlocks(q.Packed, q.Scales, q.ZeroPoints, q.Bits, q.K, q.N, q.BlockSize)
}
