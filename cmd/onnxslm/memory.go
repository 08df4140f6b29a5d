package main

import (
	"os"
	"runtime/debug"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/runtime"
)

// boundMemory bounds what prune and analyze keep resident for model m.
//
// Weights memory-mapped from external data (onnx.Load) are file pages, not
// Go heap: a run that reads them keeps them resident until they are dropped,
// so rt gets a runtime.Pager that drops them every runtime.DefaultPagerEvery
// bytes read (the returned pager; nil when nothing is mapped, and the
// caller's Save hands it the bytes it writes from them). The resident set
// then follows the heap plus about one layer of weights, not the file.
//
// The Go heap gets a soft memory limit, unless the user set GOMEMLIMIT: Go's
// collector otherwise lets the heap grow to twice what is live before
// collecting, and the search's short-lived candidate weights and
// activations would then stay resident. The limit is 1.3× the weights held
// on the heap (runtime.WeightBytes less the mapped bytes: weights inline in
// the model file; float16/bfloat16 count their 2 bytes, since the runtime
// keeps them as stored) plus half the mapped bytes (the calibration caches,
// the candidates' merged layers and repair fits grow with the model; at
// 1.26 B they are ~0.3× of it) plus 256 MiB for activations; it is soft, so
// a run that truly needs more still gets it.
func boundMemory(m *onnx.Model, rt *runtime.Options) *runtime.Pager {
	mapped := m.MappedBytes()
	var pg *runtime.Pager
	if mapped > 0 {
		pg = runtime.NewPager(func() { _ = m.ReleasePages() }, 0)
		rt.Pager = pg
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		heap := max(0, runtime.WeightBytes(m.Proto)-mapped)
		debug.SetMemoryLimit(heap + heap*3/10 + mapped/2 + 256<<20)
	}
	return pg
}
