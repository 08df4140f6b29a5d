package runtime

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// plan is what one Run needs for one combination of fed names and shapes and
// fetched names.
//
// The first Run of a plan executes every needed node (the full list) and keeps
// the values of the static nodes: those whose outputs depend only on
// initializers, constants and the shapes of the feeds (Shape → Gather → Concat →
// Reshape plumbing, causal masks, position ranges, RoPE tables). Later Runs with
// the same feed shapes execute only the dynamic nodes (the fast list), reading
// the kept static values.
type plan struct {
	fetch []int
	fed   []bool
	full  []step
	fast  []step
	// fastNodes are the dynamic nodes; the fast list is made from them (with
	// fusions, which need the static values) after the first Run.
	fastNodes []*node
	keep      []int // static values read by the fast list or fetched

	mu     sync.Mutex
	ready  bool            // static values are computed
	static map[int]*Tensor // kept static values
}

// unit is what a step runs: one node, or a fused chain of nodes.
type unit struct {
	label, op string
	in, out   []int // value indices (-1: absent)
	run       kernel
	inplace   bool   // run may overwrite dying inputs (ec.outLike)
	stored    uint64 // inputs (bit i) run takes as 16-bit weights (half.go)
}

func nodeUnit(n *node) unit {
	return unit{label: n.label(), op: n.op, in: n.in, out: n.out, run: n.run, inplace: n.def.inplace(), stored: storedInputs[n.op]}
}

type step struct {
	unit
	static  bool  // outputs are static (full list only): computed without the pool and kept
	release []int // values whose last reader is this step
	reuse   []bool
}

// Run executes the graph: feeds name graph inputs and/or intermediate values;
// fetch names the values to return (graph outputs, or any intermediate value as
// a tap); an empty fetch means the graph outputs. Only the nodes needed for
// fetch run, and nodes whose outputs are all fed are not run, so feeding an
// intermediate value (say the hidden state entering layer k, plus the graph
// input the masks are derived from) runs only what lies above it.
func (s *Session) Run(feeds map[string]*Tensor, fetch []string) (map[string]*Tensor, error) {
	return s.RunContext(context.Background(), feeds, fetch)
}

// RunContext is Run with cancellation, checked between nodes.
func (s *Session) RunContext(ctx context.Context, feeds map[string]*Tensor, fetch []string) (map[string]*Tensor, error) {
	if len(fetch) == 0 {
		for _, o := range s.outputs {
			fetch = append(fetch, o.Name)
		}
	}
	key, err := s.planKey(feeds, fetch)
	if err != nil {
		return nil, err
	}
	p, err := s.getPlan(key, feeds, fetch)
	if err != nil {
		return nil, err
	}
	vals := make([]*Tensor, len(s.names))
	for name, t := range feeds {
		vals[s.index[name]] = t
	}
	ec := &execCtx{ctx: ctx, s: s, threads: s.threads, refs: map[unsafe.Pointer]*bufRef{}}
	defer ec.finish(vals, p.fetch)

	p.mu.Lock()
	if !p.ready {
		err := ec.runSteps(p.full, vals, func(v int, t *Tensor) { p.static[v] = t })
		if err == nil && !s.opts.NoFolding {
			kept := make(map[int]*Tensor, len(p.keep))
			for _, v := range p.keep {
				kept[v] = p.static[v]
			}
			p.static = kept
			p.fast = s.schedule(s.fuse(p.fastNodes, p.fed, p.fetch, kept), nil, p.fed, p.fetch)
			p.ready = true
		} else {
			clear(p.static)
		}
		p.mu.Unlock()
		if err != nil {
			return nil, err
		}
	} else {
		p.mu.Unlock()
		for v, t := range p.static {
			vals[v] = t
		}
		if err := ec.runSteps(p.fast, vals, nil); err != nil {
			return nil, err
		}
	}
	out := make(map[string]*Tensor, len(fetch))
	for i, v := range p.fetch {
		t := vals[v]
		if t == nil && s.inits[v] != nil {
			if t, err = s.initializer(v); err != nil {
				return nil, err
			}
		}
		if t == nil {
			return nil, fmt.Errorf("runtime: value %q was not computed", fetch[i])
		}
		if f, ok := feeds[fetch[i]]; ok {
			t = f
		} else if !ec.owned(t) {
			// An initializer, a cached static value or a view of one: the
			// caller gets its own copy.
			t = t.Clone()
		}
		out[fetch[i]] = t
	}
	return out, nil
}

// Recycle hands the storage of tensors that Run returned back to the
// session, which reuses it in later Runs. A caller done with a Run's outputs
// (the logits of a batch once its loss is computed, say) saves the garbage
// collector their memory: with a large model, whose weights make the Go heap
// large, garbage may otherwise grow to about the size of the weights before
// it is collected (GOGC=100). Afterwards each tensor is empty (shape [0]), and
// nothing may use its former storage: do not recycle a tensor whose data is
// still used elsewhere (a feed still in use, a tensor sharing its data).
// Tensors other than float32, and nil, are ignored.
func (s *Session) Recycle(ts ...*Tensor) {
	for _, t := range ts {
		if t == nil || t.dtype != Float32 {
			continue
		}
		s.pool.putUnique(t.Float32Data())
		t.shape = []int{0}
		t.data = []float32{}
	}
}

// planKey identifies a plan: fed names with their types and shapes, fetched names.
func (s *Session) planKey(feeds map[string]*Tensor, fetch []string) (string, error) {
	var b strings.Builder
	for _, name := range sortedNames(feeds) {
		t := feeds[name]
		i, ok := s.index[name]
		if !ok {
			return "", fmt.Errorf("runtime: feed %q is not a value of the graph", name)
		}
		if t == nil {
			return "", fmt.Errorf("runtime: feed %q is nil", name)
		}
		if err := s.checkFeed(i, t); err != nil {
			return "", err
		}
		b.WriteString(name)
		b.WriteByte(0)
		b.WriteString(t.dtype.String())
		for _, d := range t.shape {
			b.WriteByte(',')
			b.WriteString(strconv.Itoa(d))
		}
		b.WriteByte(0)
	}
	b.WriteByte(1)
	for _, name := range fetch {
		if _, ok := s.index[name]; !ok {
			return "", fmt.Errorf("runtime: fetch %q is not a value of the graph", name)
		}
		b.WriteString(name)
		b.WriteByte(0)
	}
	return b.String(), nil
}

// checkFeed compares a feed of a graph input with its declaration.
func (s *Session) checkFeed(v int, t *Tensor) error {
	if dataLen(t.data) != numel(t.shape) || dtypeOf(t.data) != t.dtype {
		return fmt.Errorf("runtime: feed %q: malformed tensor", s.names[v])
	}
	pos, ok := s.isInput[v]
	if !ok {
		return nil
	}
	vi := s.inputs[pos]
	if vi.DType != Invalid && vi.DType != t.dtype {
		return fmt.Errorf("runtime: feed %q is %v, the model declares %v", vi.Name, t.dtype, vi.DType)
	}
	if vi.Shape != nil {
		if len(vi.Shape) != len(t.shape) {
			return fmt.Errorf("runtime: feed %q has shape %v, the model declares rank %d", vi.Name, t.shape, len(vi.Shape))
		}
		for i, d := range vi.Shape {
			if d.Size >= 0 && d.Size != t.shape[i] {
				return fmt.Errorf("runtime: feed %q has shape %v, the model declares dimension %d = %d", vi.Name, t.shape, i, d.Size)
			}
		}
	}
	return nil
}

const maxPlans = 64

func (s *Session) getPlan(key string, feeds map[string]*Tensor, fetch []string) (*plan, error) {
	s.mu.Lock()
	p, ok := s.plans[key]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := s.buildPlan(feeds, fetch)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.plans[key]; ok {
		return q, nil
	}
	if len(s.plans) >= maxPlans {
		clear(s.plans)
	}
	s.plans[key] = p
	return p, nil
}

func (s *Session) buildPlan(feeds map[string]*Tensor, fetch []string) (*plan, error) {
	nv := len(s.names)
	fed := make([]bool, nv)
	p := &plan{static: map[int]*Tensor{}}
	for name := range feeds {
		fed[s.index[name]] = true
	}
	for _, name := range fetch {
		p.fetch = append(p.fetch, s.index[name])
	}
	// Needed nodes, ignoring folding.
	need, err := s.closure(p.fetch, fed, nil)
	if err != nil {
		return nil, err
	}
	// Classify values: static (depends only on constants and feed shapes) and
	// shape-known (its shape depends only on feed shapes).
	static := make([]bool, nv)
	shapeKnown := make([]bool, nv)
	for v := range nv {
		if fed[v] {
			shapeKnown[v] = true
		} else if s.inits[v] != nil {
			static[v], shapeKnown[v] = true, true
		}
	}
	staticNode := make([]bool, len(s.nodes))
	heavy := s.heavyHalfInits()
	for _, n := range s.nodes {
		if !need[n.idx] {
			continue
		}
		st, sk := !widensHeavy(n, heavy), true
		for i, v := range n.in {
			if v < 0 {
				continue
			}
			if n.def.shapeOnly() {
				st = st && shapeKnown[v]
			} else {
				st = st && static[v]
			}
			sk = sk && shapeKnown[v]
			if n.def.isShapeArg(i) {
				sk = sk && static[v]
			}
		}
		if s.opts.NoFolding {
			st = false
		}
		staticNode[n.idx] = st
		for _, o := range n.out {
			if o >= 0 && !fed[o] {
				static[o] = st
				shapeKnown[o] = st || sk
			}
		}
	}
	fastNeed, err := s.closure(p.fetch, fed, static)
	if err != nil {
		return nil, err
	}
	keep := map[int]bool{}
	for _, n := range s.nodes {
		if fastNeed[n.idx] {
			for _, v := range n.in {
				if v >= 0 && static[v] && s.inits[v] == nil {
					keep[v] = true
				}
			}
		}
	}
	for _, v := range p.fetch {
		if static[v] && s.inits[v] == nil && !fed[v] {
			keep[v] = true
		}
	}
	for v := range keep {
		p.keep = append(p.keep, v)
	}
	var fullNodes, fastNodes []*node
	for _, n := range s.nodes {
		if need[n.idx] {
			fullNodes = append(fullNodes, n)
		}
		if fastNeed[n.idx] {
			fastNodes = append(fastNodes, n)
		}
	}
	units := make([]unit, len(fullNodes))
	st := make([]bool, len(fullNodes))
	for i, n := range fullNodes {
		units[i] = nodeUnit(n)
		st[i] = staticNode[n.idx]
	}
	p.full = s.schedule(units, st, fed, p.fetch)
	p.fastNodes = fastNodes
	p.fed = fed
	return p, nil
}

// closure returns the nodes needed to compute fetch, stopping at fed values,
// initializers and (when stop is not nil) values marked in stop.
func (s *Session) closure(fetch []int, fed, stop []bool) ([]bool, error) {
	need := make([]bool, len(s.nodes))
	seen := make([]bool, len(s.names))
	stack := append([]int(nil), fetch...)
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[v] {
			continue
		}
		seen[v] = true
		if fed[v] || s.inits[v] != nil || stop != nil && stop[v] {
			continue
		}
		p := s.producer[v]
		if p < 0 {
			if _, ok := s.isInput[v]; ok {
				return nil, fmt.Errorf("runtime: graph input %q is needed but not fed", s.names[v])
			}
			return nil, fmt.Errorf("runtime: value %q has no producer", s.names[v])
		}
		if need[p] {
			continue
		}
		need[p] = true
		for _, in := range s.nodes[p].in {
			if in >= 0 {
				stack = append(stack, in)
			}
		}
	}
	return need, nil
}

// schedule turns units (in topological order) into steps with the values each
// step releases and the inputs it may overwrite; static[i] marks static units
// (nil: none).
func (s *Session) schedule(nodes []unit, static, fed []bool, fetch []int) []step {
	keepAlive := make([]bool, len(s.names))
	for _, v := range fetch {
		keepAlive[v] = true
	}
	last := map[int]int{}
	for i, n := range nodes {
		for _, v := range n.in {
			if v >= 0 {
				last[v] = i
			}
		}
		for _, v := range n.out {
			if v >= 0 {
				if _, ok := last[v]; !ok {
					last[v] = i // never read: released right away
				}
			}
		}
	}
	steps := make([]step, len(nodes))
	for i, n := range nodes {
		steps[i].unit = n
		if static != nil {
			steps[i].static = static[i]
		}
	}
	for v, i := range last {
		if keepAlive[v] || fed[v] || s.inits[v] != nil {
			continue
		}
		steps[i].release = append(steps[i].release, v)
	}
	for i := range steps {
		st := &steps[i]
		if !st.inplace {
			continue
		}
		st.reuse = make([]bool, len(st.in))
		for j, v := range st.in {
			if v < 0 {
				continue
			}
			count := 0
			for _, w := range st.in {
				if w == v {
					count++
				}
			}
			if count != 1 {
				continue
			}
			for _, r := range st.release {
				if r == v {
					st.reuse[j] = true
				}
			}
		}
	}
	return steps
}

// execCtx is the state of one Run.
type execCtx struct {
	ctx     context.Context
	s       *Session
	threads int
	// pooled is false while a static step runs: its outputs are kept across
	// Runs, so they must not come from (or go back to) the buffer pool.
	pooled bool
	// refs counts, for each float32 buffer taken from the pool during this Run,
	// the live values that use it.
	refs map[unsafe.Pointer]*bufRef
	// reuse marks, for the step running, the inputs whose buffers the kernel may
	// overwrite (their last reader, sole user).
	reuse []bool
	in    []*Tensor
	// live and peak count the float32 elements of this Run's pooled buffers
	// in use (for tests and the memory bound).
	live, peak int
}

func (ec *execCtx) runSteps(steps []step, vals []*Tensor, keepStatic func(int, *Tensor)) error {
	for si := range steps {
		st := &steps[si]
		if err := ec.ctx.Err(); err != nil {
			return err
		}
		n := &st.unit
		in := make([]*Tensor, len(n.in))
		for i, v := range n.in {
			if v < 0 {
				continue
			}
			t := vals[v]
			if t == nil {
				if s := ec.s.inits[v]; s != nil {
					var err error
					if t, err = ec.s.initializer(v); err != nil {
						return err
					}
				} else {
					return fmt.Errorf("runtime: node %q (%s): input %q is not available", n.label, n.op, ec.s.names[v])
				}
			}
			in[i] = t
		}
		ec.pooled = !st.static
		ec.reuse = nil
		if ec.pooled && st.reuse != nil {
			ec.reuse = st.reuse
		}
		if pg := ec.s.opts.Pager; pg != nil {
			pg.Read(ec.weightBytes(n, in))
		}
		scratch := ec.widenInputs(in, n.stored)
		ec.in = in
		out, err := runKernel(ec, n.run, in)
		if err != nil {
			return fmt.Errorf("node %q (%s): %w", n.label, n.op, err)
		}
		if len(out) < len(n.out) {
			return fmt.Errorf("node %q (%s): kernel returned %d outputs, want %d", n.label, n.op, len(out), len(n.out))
		}
		for i, v := range n.out {
			if v < 0 || vals[v] != nil { // absent, or fed: the feed wins
				continue
			}
			vals[v] = out[i]
			ec.retain(out[i])
			if st.static && keepStatic != nil {
				keepStatic(v, out[i])
			}
		}
		for _, t := range scratch {
			ec.recycle(t)
		}
		for _, v := range st.release {
			ec.release(vals[v])
			vals[v] = nil
		}
	}
	return nil
}

// bufRef counts the live values that use a float32 buffer taken from the pool
// during a Run.
type bufRef struct {
	n   int
	buf []float32
}

func bufKey(t *Tensor) unsafe.Pointer {
	if t == nil {
		return nil
	}
	d, ok := t.data.([]float32)
	if !ok || cap(d) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(d))
}

func (ec *execCtx) retain(t *Tensor) {
	if r := ec.refs[bufKey(t)]; r != nil {
		r.n++
	}
}

func (ec *execCtx) release(t *Tensor) {
	k := bufKey(t)
	r := ec.refs[k]
	if r == nil {
		return
	}
	if r.n--; r.n <= 0 {
		delete(ec.refs, k)
		ec.live -= len(r.buf)
		ec.s.pool.put(r.buf)
	}
}

// owned reports whether t's storage was made by a dynamic step of this Run
// (so that it can be handed to the caller as is).
func (ec *execCtx) owned(t *Tensor) bool {
	return ec.refs[bufKey(t)] != nil
}

// finish returns the Run's remaining buffers (scratch, values of a failed Run)
// to the pool, except those of fetched values, which now belong to the caller.
func (ec *execCtx) finish(vals []*Tensor, fetch []int) {
	for _, v := range fetch {
		delete(ec.refs, bufKey(vals[v]))
	}
	for _, r := range ec.refs {
		ec.s.pool.put(r.buf)
	}
	ec.refs = nil
	ec.s.lastPeak.Store(int64(ec.peak))
}

// f32 returns a float32 buffer of n elements with unspecified contents.
func (ec *execCtx) f32(n int) []float32 {
	checkAlloc(n, 4)
	if !ec.pooled || n == 0 {
		return make([]float32, n)
	}
	b := ec.s.pool.get(n)
	ec.refs[unsafe.Pointer(unsafe.SliceData(b))] = &bufRef{buf: b}
	ec.live += n
	ec.peak = max(ec.peak, ec.live)
	return b
}

// newF32 makes a float32 tensor of shape with unspecified contents.
func (ec *execCtx) newF32(shape []int) *Tensor {
	return &Tensor{dtype: Float32, shape: shape, data: ec.f32(numel(shape))}
}

// newZeroF32 makes a float32 tensor of zeros.
func (ec *execCtx) newZeroF32(shape []int) *Tensor {
	t := ec.newF32(shape)
	clear(t.data.([]float32))
	return t
}

// newOut makes an output tensor of dtype and shape; float32 storage has
// unspecified contents, other types are zeroed.
func (ec *execCtx) newOut(dt DType, shape []int) *Tensor {
	if dt == Float32 {
		return ec.newF32(shape)
	}
	return newTensor(dt, shape)
}

// reusable returns input i's storage as the output of the given shape if the
// kernel may overwrite it (the same dtype and element count), else a new tensor.
func (ec *execCtx) outLike(i int, dt DType, shape []int) *Tensor {
	if ec.reuse != nil && i < len(ec.reuse) && ec.reuse[i] {
		t := ec.in[i]
		if t.dtype == dt && dt == Float32 && numel(t.shape) == numel(shape) {
			if r := ec.refs[bufKey(t)]; r != nil && r.n == 1 {
				return &Tensor{dtype: dt, shape: shape, data: t.data}
			}
		}
	}
	return ec.newOut(dt, shape)
}

// recycle returns a scratch tensor made by this Run (and not stored as a
// value) to the pool.
func (ec *execCtx) recycle(t *Tensor) {
	k := bufKey(t)
	if r := ec.refs[k]; r != nil && r.n == 0 {
		delete(ec.refs, k)
		ec.live -= len(r.buf)
		ec.s.pool.put(r.buf)
	}
}

// runKernel runs one step's kernel, turning a refused allocation or a panic
// into an error.
func runKernel(ec *execCtx, run kernel, in []*Tensor) (out []*Tensor, err error) {
	defer recoverKernel(&err)
	return run(ec, in)
}
