// Package kernels holds the runtime's float32 compute kernels: the blocked
// matrix multiply (Sgemm, with AVX2/FMA and AVX-512 microkernels), vector
// elementwise arithmetic, exp/sigmoid/tanh/max and the RoPE row rotation, each
// with a portable Go version and, on amd64, an assembly version chosen at start
// from the CPU's features (golang.org/x/sys/cpu).
//
// The package variables that hold an optional vector kernel (Binary, RopeRow,
// ScaleMaskMax, MulScalar, MulScalarTo) are nil where the CPU lacks it; the
// caller then uses its scalar loop. Every vector kernel rounds like the scalar
// definition it replaces where the runtime relies on bitwise results (see the
// tests), so results do not depend on which path ran.
package kernels
