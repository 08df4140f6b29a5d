package kernels

import (
	"sync"
	"sync/atomic"
)

// Tasks runs run(0), ..., run(n-1) on up to threads goroutines (the caller's
// included), handing tasks out as goroutines come free, so that a goroutine
// on a busy core simply takes fewer. It is the one parallel loop of the
// kernels and of the runtime.
func Tasks(threads, n int, run func(int)) {
	var next atomic.Int64
	work := func() {
		for t := int(next.Add(1)) - 1; t < n; t = int(next.Add(1)) - 1 {
			run(t)
		}
	}
	var wg sync.WaitGroup
	for range min(threads, n) - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}
