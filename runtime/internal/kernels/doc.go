// Package kernels holds the runtime's float32 compute kernels: the blocked
// matrix multiply (Sgemm, with AVX2/FMA and AVX-512 microkernels), vector
// elementwise arithmetic, exp/sigmoid/tanh/max and the RoPE row rotation, each
// with a portable Go version and, on amd64, an assembly version chosen at start
// from the CPU's features (golang.org/x/sys/cpu).
//
// The package variables that hold an optional vector kernel (Binary, RopeRow,
// ScaleMaskMax, MulScalar, MulScalarTo) are nil where the CPU lacks it; the
// caller then uses its scalar loop. Those round every element exactly as the
// scalar Go expressions do. Exp, Sigmoid and Tanh are not bitwise equal to
// their float64 fallback (≤ 2 ulp apart; see TestVectorMath), so callers that
// split a slice between goroutines keep the split at multiples of 8 (the
// runtime uses 16) to keep results independent of the thread count. Sgemm's
// results do not depend on the thread count nor on whether the AVX-512 kernel
// is used (TestSgemmWideKernelBitwise).
package kernels
