package runtime

import "github.com/onnxslm/onnxslm/runtime/internal/kernels"

// parallelMinWork is the amount of work (items × cost) below which a loop runs
// on the calling goroutine: starting goroutines costs a few microseconds.
const parallelMinWork = 1 << 15

// chunksPerThread is how many pieces a parallel loop is cut into per thread.
// The pieces are handed out as goroutines come free, so when another process
// holds a core, the goroutine stuck behind it delays one small piece, not half
// of the loop.
const chunksPerThread = 4

// parallelFor runs f over [0, n) in contiguous chunks on up to threads
// goroutines (the caller's included) when n*cost is large enough.
func parallelFor(threads, n, cost int, f func(lo, hi int)) {
	parallelChunks(threads, n, 1, cost, f)
}

// parallelElems is parallelFor over the elements of an elementwise loop:
// chunks start at multiples of 16 elements, so that where the loop splits
// between vector and scalar code (which may round transcendental functions
// differently) does not depend on the number of threads.
func parallelElems(threads, n, cost int, f func(lo, hi int)) {
	parallelChunks(threads, n, 16, cost, f)
}

// parallelChunks cuts [0, n) into chunks starting at multiples of align and
// runs f on each, on up to threads goroutines taking chunks as they come free.
// Every f(lo, hi) computes its own outputs, so results do not depend on how
// the chunks fall.
func parallelChunks(threads, n, align, cost int, f func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if threads <= 1 || n == 1 || n*max(cost, 1) < parallelMinWork {
		f(0, n)
		return
	}
	parts := min(threads*chunksPerThread, n)
	// Keep chunks above the minimum work where the loop allows.
	if per := parallelMinWork / max(cost, 1); per > 0 {
		parts = max(min(parts, n/per), threads)
	}
	chunk := (n + parts - 1) / parts
	chunk = (chunk + align - 1) / align * align
	parts = (n + chunk - 1) / chunk
	if parts <= 1 {
		f(0, n)
		return
	}
	kernels.Tasks(threads, parts, func(c int) { f(c*chunk, min((c+1)*chunk, n)) })
}
