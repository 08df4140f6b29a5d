package kernels

// microKernel computes C[0:6, 0:16] += Ap·Bp over kc (packed panels; C row
// stride ldc), or C = Ap·Bp when acc is false. An assembly version replaces it
// where the CPU allows.
var microKernel = microKernelGo

// microKernelRows, where available, is microKernel reading A in place: six
// rows of A starting at a[0], lda apart (A row-major, alpha 1), so that A
// need not be packed.
var microKernelRows func(kc int, a []float32, lda int, b, c []float32, ldc int, acc bool)

// microKernel2 and microKernelRows2, where available (AVX-512), compute a
// 6×32 tile from two adjacent packed B panels (the second bs floats after the
// first) in one pass, with results bitwise identical to two calls of
// microKernel / microKernelRows.
var (
	microKernel2     func(kc int, a, b []float32, bs int, c []float32, ldc int, acc bool)
	microKernelRows2 func(kc int, a []float32, lda int, b []float32, bs int, c []float32, ldc int, acc bool)
)
