package half

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// Widen widens the len(src)/2 float16 values in src, little-endian bits as
// ONNX raw_data holds them, into dst[:len(src)/2], bitwise as ToFloat32 does
// (NaN payloads, signalling ones included, are kept). dst must be that long.
func Widen(dst []float32, src []byte) {
	n := len(src) / 2
	dst = dst[:n]
	v := widenF16(dst, src[:2*n])
	widenF16Go(dst[v:], src[2*v:2*n])
}

// WidenBF16 is Widen for bfloat16 values (BFloat16ToFloat32).
func WidenBF16(dst []float32, src []byte) {
	n := len(src) / 2
	dst = dst[:n]
	v := widenBF16(dst, src[:2*n])
	widenBF16Go(dst[v:], src[2*v:2*n])
}

// Narrow narrows the float32 values in src to float16 bits, written
// little-endian into dst[:2*len(src)], bitwise as FromFloat32 does. dst must
// be that long.
func Narrow(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	v := narrowF16(dst, src)
	narrowF16Go(dst[2*v:], src[v:])
}

// NarrowBF16 is Narrow for bfloat16 (BFloat16FromFloat32).
func NarrowBF16(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	v := narrowBF16(dst, src)
	narrowBF16Go(dst[2*v:], src[v:])
}

// widenF16, widenBF16, narrowF16 and narrowBF16 convert a prefix of their
// arguments with vector instructions where the CPU has them (see
// slice_amd64.go) and return how many values they converted; the Go loops
// convert the rest. Tests set them to none to check the Go loops alone.
var (
	widenF16   = none[float32, byte]
	widenBF16  = none[float32, byte]
	narrowF16  = none[byte, float32]
	narrowBF16 = none[byte, float32]
)

func none[D, S any]([]D, []S) int { return 0 }

// widenF16Go reads the bytes directly (no []uint16 copy) and takes the common
// case, a normal number, without ToFloat32's switch.
func widenF16Go(dst []float32, src []byte) {
	dst = dst[:len(src)/2]
	for i := range dst {
		h := binary.LittleEndian.Uint16(src[2*i:])
		if e := h & 0x7c00; e != 0 && e != 0x7c00 {
			dst[i] = math.Float32frombits(uint32(h&0x8000)<<16 | (uint32(h&0x7fff)<<13 + (127-15)<<23))
			continue
		}
		dst[i] = ToFloat32(h)
	}
}

func widenBF16Go(dst []float32, src []byte) {
	dst = dst[:len(src)/2]
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
	}
}

// narrowF16Go takes the common case, |f| in [2⁻¹⁴, 65536) where the result
// is a normal float16 or rounds up to Inf, without FromFloat32's branches:
// re-bias the exponent, add half an ulp less one plus the ulp's low bit (ties
// to even), shift. The rounding branch is what costs on real weights.
func narrowF16Go(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, f := range src {
		b := math.Float32bits(f)
		x := b & 0x7fffffff
		var h uint16
		if x-0x38800000 < 0x47800000-0x38800000 {
			h = uint16(b>>16)&0x8000 | uint16((x-(127-15)<<23+0xfff+(x>>13)&1)>>13)
		} else {
			h = FromFloat32(f)
		}
		binary.LittleEndian.PutUint16(dst[2*i:], h)
	}
}

func narrowBF16Go(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, f := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], BFloat16FromFloat32(f))
	}
}

// WidenBits is Widen for values held as bits in a []uint16 (as the runtime's
// kernels hold a 16-bit weight) rather than raw bytes: dst[:len(src)].
func WidenBits(dst []float32, src []uint16) { widenBits(dst, src, Widen, ToFloat32) }

// WidenBF16Bits is WidenBits for bfloat16.
func WidenBF16Bits(dst []float32, src []uint16) { widenBits(dst, src, WidenBF16, BFloat16ToFloat32) }

// widenBits hands src's memory to widen as bytes where it is the
// little-endian bytes widen reads, and widens value by value otherwise.
func widenBits(dst []float32, src []uint16, widen func([]float32, []byte), scalar func(uint16) float32) {
	dst = dst[:len(src)]
	if !littleEndian {
		for i, h := range src {
			dst[i] = scalar(h)
		}
		return
	}
	widen(dst, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(src))), 2*len(src)))
}

// littleEndian reports whether a []uint16 in memory is the little-endian
// bytes that Widen reads.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
