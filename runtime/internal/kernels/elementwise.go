package kernels

// BinOp is a float32 arithmetic operation with a vector kernel.
type BinOp int

// The operations Binary computes.
const (
	Add BinOp = iota
	Sub
	Mul
	Div
)

// Binary, where the CPU allows, sets dst[i] = a[i*sa] op b[i*sb] for a length
// of dst that is a multiple of 8, with strides sa, sb of 0 or 1 (not both 0).
// It returns false when it has no kernel for the case, leaving dst untouched.
// Each element is rounded as the scalar Go expression would be.
var Binary func(op BinOp, dst, a, b []float32, sa, sb int) bool
