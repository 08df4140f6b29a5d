// Package ints reads the integer and bool slices of tensor data as []int64,
// for the onnx package's initializers and the runtime's tensors alike.
package ints

// Narrow are the integer types that convert to int64 without loss.
type Narrow interface {
	~int32 | ~int16 | ~int8 | ~uint8 | ~uint16 | ~uint32
}

// Widen returns x converted element by element to int64, in a new slice.
func Widen[T Narrow](x []T) []int64 {
	v := make([]int64, len(x))
	for i, e := range x {
		v[i] = int64(e)
	}
	return v
}

// AsInt64s returns data, an []int64, a []T of a Narrow type or a []bool, as
// []int64 (bool as 0 or 1): data itself when it is an []int64, else a new
// slice. ok is false for any other data (an []uint64 among them, whose values
// may not fit).
func AsInt64s(data any) (v []int64, ok bool) {
	switch x := data.(type) {
	case []int64:
		return x, true
	case []bool:
		v := make([]int64, len(x))
		for i, b := range x {
			if b {
				v[i] = 1
			}
		}
		return v, true
	}
	for _, widen := range widens {
		if v, ok := widen(data); ok {
			return v, true
		}
	}
	return nil, false
}

// widens are widenSlice of each Narrow type.
var widens = []func(data any) ([]int64, bool){
	widenSlice[int32], widenSlice[int16], widenSlice[int8], widenSlice[uint8], widenSlice[uint16], widenSlice[uint32],
}

// widenSlice is Widen of data when data is a []T.
func widenSlice[T Narrow](data any) ([]int64, bool) {
	x, ok := data.([]T)
	if !ok {
		return nil, false
	}
	return Widen(x), true
}
