// Package npy reads and writes NumPy .npy files (format versions 1.0, 2.0 and
// 3.0; little-endian; C order) holding float32, float64, int64, int32, uint8
// or bool arrays.
package npy

import (
	"fmt"
	"math"
	"math/bits"
)

// The dtypes this package reads and writes, spelled as NumPy writes them in a
// little-endian .npy header.
const (
	Float32 = "<f4"
	Float64 = "<f8"
	Int64   = "<i8"
	Int32   = "<i4"
	Uint8   = "|u1"
	Bool    = "|b1"
)

// Array is an n-dimensional array in C (row-major) order.
//
// Data holds the elements and has the Go type of DType: []float32 for "<f4",
// []float64 for "<f8", []int64 for "<i8", []int32 for "<i4", []uint8 for "|u1"
// and []bool for "|b1". len(Data) is the product of Shape (1 for a scalar,
// whose Shape is empty).
type Array struct {
	Shape []int
	DType string
	Data  any
}

// New returns an Array of the given shape over data, whose Go type sets the
// dtype. It fails when data's type is not one of the six supported slice types
// or its length is not the product of shape. The array shares data and a copy
// of shape.
func New(shape []int, data any) (*Array, error) {
	dt, n, ok := dtypeOf(data)
	if !ok {
		return nil, fmt.Errorf("npy: unsupported data type %T (want []float32, []float64, []int64, []int32, []uint8 or []bool)", data)
	}
	count, err := elements(shape)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	if count != uint64(n) {
		return nil, fmt.Errorf("npy: shape %v holds %d elements, data has %d", shape, count, n)
	}
	return &Array{Shape: append([]int{}, shape...), DType: dt, Data: data}, nil
}

// FromRows returns an int64 array of shape [len(rows), len(rows[0])] (token
// ids, one sequence per row); rows of different lengths are an error.
func FromRows(rows [][]int64) (*Array, error) {
	if len(rows) == 0 {
		return nil, fmt.Errorf("npy: no rows")
	}
	flat := make([]int64, 0, len(rows)*len(rows[0]))
	for i, r := range rows {
		if len(r) != len(rows[0]) {
			return nil, fmt.Errorf("npy: row %d has %d values, row 0 has %d", i, len(r), len(rows[0]))
		}
		flat = append(flat, r...)
	}
	return New([]int{len(rows), len(rows[0])}, flat)
}

// Len returns the number of elements, len(Data).
func (a *Array) Len() int {
	_, n, _ := dtypeOf(a.Data)
	return n
}

// Validate checks that DType is supported, matches Data's Go type, and that
// len(Data) equals the product of Shape.
func (a *Array) Validate() error {
	if a == nil {
		return fmt.Errorf("npy: nil array")
	}
	dt, n, ok := dtypeOf(a.Data)
	if !ok {
		return fmt.Errorf("npy: unsupported data type %T", a.Data)
	}
	if a.DType != dt {
		return fmt.Errorf("npy: dtype %q does not match data of type %T (dtype %q)", a.DType, a.Data, dt)
	}
	count, err := elements(a.Shape)
	if err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if count != uint64(n) {
		return fmt.Errorf("npy: shape %v holds %d elements, data has %d", a.Shape, count, n)
	}
	return nil
}

// Float32s returns the elements as float32: Data itself for "<f4", otherwise
// a converted copy (float64 values are rounded to nearest, integers above
// 2^24 in magnitude may round, bools become 0 or 1).
func (a *Array) Float32s() ([]float32, error) { return elementsAs[float32](a.Data) }

// Float64s returns the elements as float64: Data itself for "<f8", otherwise
// a converted copy (exact for every dtype except int64 values above 2^53 in
// magnitude).
func (a *Array) Float64s() ([]float64, error) { return elementsAs[float64](a.Data) }

// Int64s returns the elements as int64: Data itself for "<i8", a converted
// copy for the other integer dtypes and bool. Floating-point arrays are
// refused: converting them could silently truncate.
func (a *Array) Int64s() ([]int64, error) {
	switch a.Data.(type) {
	case []float32, []float64:
		return nil, fmt.Errorf("npy: dtype %s is not an integer type", a.DType)
	}
	return elementsAs[int64](a.Data)
}

// elementsAs returns data as T: data itself when it is []T, otherwise a
// converted copy (Go's conversion of each element; bools become 0 or 1).
func elementsAs[T float32 | float64 | int64](data any) ([]T, error) {
	switch d := data.(type) {
	case []T: // first, so that a []T is returned as it is, not copied
		return d, nil
	case []float32:
		return convert(d, func(v float32) T { return T(v) }), nil
	case []float64:
		return convert(d, func(v float64) T { return T(v) }), nil
	case []int64:
		return convert(d, func(v int64) T { return T(v) }), nil
	case []int32:
		return convert(d, func(v int32) T { return T(v) }), nil
	case []uint8:
		return convert(d, func(v uint8) T { return T(v) }), nil
	case []bool:
		return convert(d, func(v bool) T { return T(b2i(v)) }), nil
	}
	return nil, fmt.Errorf("npy: unsupported data type %T", data)
}

func convert[S, D any](src []S, f func(S) D) []D {
	out := make([]D, len(src))
	for i, v := range src {
		out[i] = f(v)
	}
	return out
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

// dtypeOf returns the dtype and length of a supported data slice.
func dtypeOf(data any) (string, int, bool) {
	switch d := data.(type) {
	case []float32:
		return Float32, len(d), true
	case []float64:
		return Float64, len(d), true
	case []int64:
		return Int64, len(d), true
	case []int32:
		return Int32, len(d), true
	case []uint8:
		return Uint8, len(d), true
	case []bool:
		return Bool, len(d), true
	}
	return "", 0, false
}

// itemSize returns the byte size of one element of a canonical dtype.
func itemSize(dtype string) int {
	switch dtype {
	case Float64, Int64:
		return 8
	case Float32, Int32:
		return 4
	case Uint8, Bool:
		return 1
	}
	return 0
}

// maxElements bounds an element count so that count*8 bytes fits in an int
// on every platform Go supports.
const maxElements = math.MaxInt / 8

// elements returns the product of shape, refusing negative dimensions and
// products that overflow.
func elements(shape []int) (uint64, error) {
	zero := false
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		zero = zero || d == 0
	}
	if zero {
		return 0, nil
	}
	count := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(count, uint64(d))
		if hi != 0 || lo > maxElements {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		count = lo
	}
	return count, nil
}
