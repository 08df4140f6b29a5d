package runtime

import "sync/atomic"

// Pager bounds how much of a model's weights a run keeps resident when
// they are memory-mapped from a file (onnx.Load maps external data): the
// pages a run touches stay in the process's resident set until something
// drops them, so a run of the whole model holds the whole file. A session
// given a Pager (Options.Pager) counts the bytes of weights each node reads
// and, once every Every bytes, calls Release before the node runs; Release
// drops the mapped pages (onnx.Model.ReleasePages), which the next node to
// read them faults back in from the page cache. Resident weights then stay
// near Every bytes plus one node's, whatever the model's size. A Pager may
// be shared by several sessions and used concurrently.
type Pager struct {
	release func()
	every   int64
	read    atomic.Int64
}

// DefaultPagerEvery is the bytes of weights read between releases when
// NewPager is given 0: a 1.26 B float16 Llama layer is 103 MB, so a
// layer's run drops the pages about twice, and faulting the pages back in
// from the page cache costs about 1 % of the arithmetic that reads them.
const DefaultPagerEvery = 64 << 20

// NewPager returns a Pager that calls release once every bytes of weights
// read (0: DefaultPagerEvery).
func NewPager(release func(), every int64) *Pager {
	if every <= 0 {
		every = DefaultPagerEvery
	}
	return &Pager{release: release, every: every}
}

// Read counts n bytes of weights about to be read, and calls Release first
// when Every bytes have been read since the last call. A nil Pager does
// nothing.
func (p *Pager) Read(n int64) {
	if p == nil || n <= 0 {
		return
	}
	if p.read.Add(n) >= p.every {
		p.read.Store(0)
		p.Release()
	}
}

// Release drops the pages now. A nil Pager does nothing.
func (p *Pager) Release() {
	if p != nil && p.release != nil {
		p.release()
	}
}

// weightBytes is the bytes of weights among a node's inputs: 16-bit
// weights (kept as stored, read where used) and float32 initializers
// (which alias the model's bytes).
func (ec *execCtx) weightBytes(n *unit, in []*Tensor) int64 {
	var b int64
	for i, t := range in {
		switch {
		case t == nil:
		case t.isHalf():
			b += 2 * int64(t.Len())
		case t.dtype == Float32 && n.in[i] >= 0 && ec.s.inits[n.in[i]] != nil:
			b += 4 * int64(t.Len())
		}
	}
	return b
}
