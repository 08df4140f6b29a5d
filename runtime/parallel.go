package runtime

import "sync"

// parallelMinWork is the amount of work (items × cost) below which a loop runs
// on the calling goroutine: starting goroutines costs a few microseconds.
const parallelMinWork = 1 << 15

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

func parallelChunks(threads, n, align, cost int, f func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if threads <= 1 || n == 1 || n*max(cost, 1) < parallelMinWork {
		f(0, n)
		return
	}
	parts := min(threads, n)
	chunk := (n + parts - 1) / parts
	chunk = (chunk + align - 1) / align * align
	var wg sync.WaitGroup
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	f(0, min(chunk, n))
	wg.Wait()
}
