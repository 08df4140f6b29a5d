package runtime

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

// Weights stay as stored. A float16 or bfloat16 initializer is a Tensor of
// dtype Float16 or BFloat16 whose data is a halfData: the 16-bit values
// themselves, aliasing the model's raw_data (no copy; the bytes may be a
// read-only mapping of the model file, so nothing here ever writes them),
// seen through strides so that a Transpose of a weight is a view too. Such a
// tensor stands for the float32 values it widens to (widening is exact), and
// it is widened where it is used:
//
//   - Cast to float (how float16 exports read each weight) passes it through,
//     as a view, instead of materialising the float32 copy;
//   - Transpose and Identity of it are views;
//   - MatMul and Gemm read it as their B operand through kernels.HalfView,
//     which widens each block while the panels are packed;
//   - Gather (the embedding lookup) widens only the rows it gathers;
//   - Shape and Size read only its shape;
//   - any other op (a norm gain in Mul, a bias in Add, an A operand, ...) gets
//     it widened before it runs (widenInputs): a small tensor (at most
//     smallHalf elements) once per Session, kept; a large one into a buffer of
//     the Run's pool, returned after the step.
//
// Plans do not keep large widened values either: a static node that would
// compute from a large 16-bit weight through another op than the views above
// runs in every Run instead of being kept (buildPlan, halfHeavy).
type halfData struct {
	bits []uint16
	st   []int // element strides of the tensor's dims into bits
	off  int
}

// smallHalf is the largest 16-bit tensor (elements) widened once and kept per
// Session: norm gains, biases, scalars.
const smallHalf = 1 << 16

// storedInputs lists, per op, the inputs (bit i for input i) that take a
// 16-bit tensor as it is stored.
var storedInputs = map[string]uint64{
	"Cast":        1,
	"Transpose":   1,
	"Identity":    1,
	"Shape":       1,
	"Size":        1,
	"Gather":      1,
	"MatMul":      1 << 1,
	"Gemm":        1 << 1,
	"FusedMatMul": 1 << 1,
}

// halfViewOps are the ops that read a 16-bit input without widening it
// (Cast, Transpose and Identity make views of it, Shape and Size read its
// shape); a static node of another op reading a large 16-bit weight is not
// kept by plans.
var halfViewOps = map[string]bool{"Cast": true, "Transpose": true, "Identity": true, "Shape": true, "Size": true}

func (t *Tensor) isHalf() bool { return t != nil && (t.dtype == Float16 || t.dtype == BFloat16) }

func (t *Tensor) half() halfData { return t.data.(halfData) }

// contiguous reports whether a 16-bit tensor is its bits in row-major order.
func (h halfData) contiguous(shape []int) bool {
	want := 1
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && h.st[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

// halfFromProto makes a 16-bit tensor of tp (FLOAT16 or BFLOAT16), aliasing
// its raw_data when that is aligned for uint16 (always, in practice), else
// holding a 2-byte copy.
func halfFromProto(tp *pb.TensorProto, shape []int) (*Tensor, error) {
	dt := Float16
	if pb.TensorProto_DataType(tp.GetDataType()) == pb.TensorProto_BFLOAT16 {
		dt = BFloat16
	}
	n := numel(shape)
	var bits []uint16
	switch raw := tp.GetRawData(); {
	case raw != nil:
		if len(raw) != 2*n {
			return nil, fmt.Errorf("raw_data has %d bytes, dims %v of %v need %d", len(raw), shape, dt, 2*n)
		}
		if n == 0 {
			bits = []uint16{}
		} else if uintptr(unsafe.Pointer(&raw[0]))%2 == 0 && littleEndian() {
			bits = unsafe.Slice((*uint16)(unsafe.Pointer(&raw[0])), n)
		} else {
			bits = make([]uint16, n)
			for i := range bits {
				bits[i] = binary.LittleEndian.Uint16(raw[2*i:])
			}
		}
	case tp.GetDataLocation() == pb.TensorProto_EXTERNAL:
		return nil, fmt.Errorf("external data of %q was not loaded", tp.GetName())
	default:
		// int32_data holds one 16-bit value per entry.
		d, err := onnx.DecodeTensor(tp)
		if err != nil {
			return nil, err
		}
		u, ok := d.Data.([]uint16)
		if !ok || len(u) != n {
			return nil, fmt.Errorf("decoded %T data of %d values for %v of %d elements", d.Data, dataLen(d.Data), dt, n)
		}
		bits = u
	}
	return &Tensor{dtype: dt, shape: shape, data: halfData{bits: bits, st: stridesOf(shape)}}, nil
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// widenTo writes t's values, widened, into dst (row-major over t.shape).
func (t *Tensor) widenTo(threads int, dst []float32) {
	h := t.half()
	bf16 := t.dtype == BFloat16
	n := numel(t.shape)
	if h.contiguous(t.shape) {
		src := h.bits[h.off : h.off+n]
		parallelFor(threads, n, 1, func(lo, hi int) {
			kernels.HalfToFloat32(dst[lo:hi], src[lo:hi], bf16)
		})
		return
	}
	// A view (a transposed weight): gather the 16-bit values in order, then widen.
	tmp := make([]uint16, n)
	stridedCopy(threads, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(tmp))), 2*n),
		unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(h.bits))), 2*len(h.bits)), 2, t.shape, h.st, h.off)
	kernels.HalfToFloat32(dst, tmp, bf16)
}

// widened returns t as a new float32 tensor (t itself when it is not 16-bit).
func (t *Tensor) widened() *Tensor {
	if !t.isHalf() {
		return t
	}
	out := newTensor(Float32, append([]int{}, t.shape...))
	t.widenTo(1, out.Float32Data())
	return out
}

// halfView returns t's view for the matmul's B operand (rank 2).
func (t *Tensor) halfView(rs, cs int) kernels.HalfView {
	h := t.half()
	return kernels.HalfView{Data: h.bits, Off: h.off, RS: rs, CS: cs, BF16: t.dtype == BFloat16}
}

// permutedHalf is Transpose of a 16-bit tensor: a view.
func permutedHalf(t *Tensor, p []int) *Tensor {
	h := t.half()
	shape, st := make([]int, len(p)), make([]int, len(p))
	for i, a := range p {
		shape[i], st[i] = t.shape[a], h.st[a]
	}
	return &Tensor{dtype: t.dtype, shape: shape, data: halfData{bits: h.bits, st: st, off: h.off}}
}

// halfCache keeps a Session's widened small 16-bit tensors, by their bits'
// address, strides and shape.
type halfCache struct {
	mu sync.Mutex
	m  map[string]*Tensor
}

func halfKey(t *Tensor) string {
	h := t.half()
	var b strings.Builder
	b.WriteString(strconv.FormatUint(uint64(uintptr(unsafe.Pointer(unsafe.SliceData(h.bits)))), 16))
	b.WriteString(t.dtype.String())
	for i, d := range t.shape {
		fmt.Fprintf(&b, ",%d:%d", d, h.st[i])
	}
	fmt.Fprintf(&b, "+%d", h.off)
	return b.String()
}

func (c *halfCache) get(t *Tensor) *Tensor {
	k := halfKey(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.m[k]; ok {
		return w
	}
	w := t.widened()
	if c.m == nil {
		c.m = map[string]*Tensor{}
	}
	c.m[k] = w
	return w
}

// widenInputs replaces the 16-bit inputs of a step that its kernel does not
// take as stored (mask: bit i for input i) by float32 ones, returning the
// pooled buffers to recycle after the step.
func (ec *execCtx) widenInputs(in []*Tensor, mask uint64) (scratch []*Tensor) {
	for i, t := range in {
		if !t.isHalf() || i < 64 && mask&(1<<i) != 0 {
			continue
		}
		if t.Len() <= smallHalf {
			in[i] = ec.s.halfs.get(t)
			continue
		}
		w := ec.newF32(append([]int{}, t.shape...))
		t.widenTo(ec.threads, w.Float32Data())
		in[i] = w
		scratch = append(scratch, w)
	}
	return scratch
}

// heavyHalfInits marks (by value index) the initializers that are 16-bit
// float tensors of more than smallHalf elements.
func (s *Session) heavyHalfInits() []bool {
	heavy := make([]bool, len(s.names))
	for v, tp := range s.inits {
		switch pb.TensorProto_DataType(tp.GetDataType()) {
		case pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
			n, err := onnx.NumElements(tp.GetDims())
			heavy[v] = err == nil && n > smallHalf
		}
	}
	return heavy
}

// widensHeavy reports whether node n would widen a large 16-bit weight
// (heavy: large 16-bit initializers and the views of them made so far, which
// it extends with n's outputs when n makes one). Plans do not keep such a
// node's outputs (a float32 copy of the weight): it runs in every Run.
func widensHeavy(n *node, heavy []bool) bool {
	reads := false
	for _, v := range n.in {
		reads = reads || v >= 0 && heavy[v]
	}
	if !reads || n.def.shapeOnly() {
		return false
	}
	if halfViewNode(n) {
		for _, o := range n.out {
			if o >= 0 {
				heavy[o] = true
			}
		}
		return false
	}
	return true
}

// gatherHalf is Gather from a 16-bit tensor (an embedding table): only the
// gathered rows are widened, into a float32 output of shape.
func gatherHalf(ec *execCtx, x *Tensor, axis int, ids []int64, shape []int) ([]*Tensor, error) {
	if err := checkIndices(ids, axis, x.shape[axis]); err != nil {
		return nil, err
	}
	h := x.half()
	wide := !h.contiguous(x.shape)
	if wide {
		x = x.widened()
	}
	out := ec.newF32(shape)
	od := out.Float32Data()
	inner := numel(x.shape[axis+1:])
	gatherRows(numel(x.shape[:axis]), x.shape[axis], ids, func(dst, src int) {
		dst, src = dst*inner, src*inner
		if wide {
			copy(od[dst:dst+inner], x.Float32Data()[src:src+inner])
			return
		}
		kernels.HalfToFloat32(od[dst:dst+inner], h.bits[h.off+src:h.off+src+inner], x.dtype == BFloat16)
	})
	return []*Tensor{out}, nil
}

// halfViewNode reports whether n's output is a view of its 16-bit input (see
// halfViewOps; a Cast only to a float type).
func halfViewNode(n *node) bool {
	if !halfViewOps[n.op] || n.op == "Shape" || n.op == "Size" {
		return false
	}
	if n.op == "Cast" {
		switch pb.TensorProto_DataType(intAttr(n, "to", 0)) {
		case pb.TensorProto_FLOAT, pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
		default:
			return false
		}
	}
	return true
}
