package runtime

import (
	"sync"
	"unsafe"
)

// pool keeps float32 buffers by length between Runs, so that steady-state
// Runs allocate (almost) nothing and the garbage collector stays quiet.
type pool struct {
	mu   sync.Mutex
	free map[int][][]float32
	held int // elements held
}

const poolMaxElems = 1 << 28 // 1 GiB of float32

func (p *pool) get(n int) []float32 {
	p.mu.Lock()
	if l := p.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		p.free[n] = l[:len(l)-1]
		p.held -= n
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	return make([]float32, n)
}

func (p *pool) put(b []float32) {
	n := len(b)
	if n == 0 || cap(b) != n {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held+n > poolMaxElems {
		return
	}
	if p.free == nil {
		p.free = map[int][][]float32{}
	}
	p.free[n] = append(p.free[n], b)
	p.held += n
}

// putUnique is put for buffers handed in from outside a Run, which may
// arrive twice (two fetched values sharing one buffer): a buffer already held
// is not added again.
func (p *pool) putUnique(b []float32) {
	if len(b) == 0 {
		return
	}
	p.mu.Lock()
	for _, h := range p.free[len(b)] {
		if unsafe.SliceData(h) == unsafe.SliceData(b) {
			p.mu.Unlock()
			return
		}
	}
	p.mu.Unlock()
	p.put(b)
}
