//go:build amd64 && !purego

package half

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The assembly loops convert n values, n a positive multiple of 8 (16 for
// narrowBF16AVX); see slice_amd64.s.

//go:noescape
func widenF16AVX(dst *float32, src *byte, n int)

//go:noescape
func widenBF16AVX(dst *float32, src *byte, n int)

//go:noescape
func narrowF16AVX(dst *byte, src *float32, n int)

//go:noescape
func narrowBF16AVX(dst *byte, src *float32, n int)

// asm reports whether the CPU runs the assembly: F16C for the float16
// conversions, AVX2 for the integer work around them and for bfloat16.
var asm = cpu.X86.HasAVX2 && cpu.X86.HasF16C

func init() {
	if asm {
		widenF16, widenBF16, narrowF16, narrowBF16 = widenF16Asm, widenBF16Asm, narrowF16Asm, narrowBF16Asm
	}
}

func widenF16Asm(dst []float32, src []byte) int {
	v := min(len(dst), len(src)/2) &^ 7
	if v > 0 {
		widenF16AVX(unsafe.SliceData(dst), unsafe.SliceData(src), v)
	}
	return v
}

func widenBF16Asm(dst []float32, src []byte) int {
	v := min(len(dst), len(src)/2) &^ 7
	if v > 0 {
		widenBF16AVX(unsafe.SliceData(dst), unsafe.SliceData(src), v)
	}
	return v
}

func narrowF16Asm(dst []byte, src []float32) int {
	v := min(len(dst)/2, len(src)) &^ 7
	if v > 0 {
		narrowF16AVX(unsafe.SliceData(dst), unsafe.SliceData(src), v)
	}
	return v
}

func narrowBF16Asm(dst []byte, src []float32) int {
	v := min(len(dst)/2, len(src)) &^ 15
	if v > 0 {
		narrowBF16AVX(unsafe.SliceData(dst), unsafe.SliceData(src), v)
	}
	return v
}
