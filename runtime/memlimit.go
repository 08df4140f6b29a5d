package runtime

import (
	"fmt"

	"github.com/onnxslm/onnxslm/internal/units"
)

// maxTensorBytes bounds one tensor's storage: half of the memory this process
// can have (physical memory, address-space and data limits; see
// memlimit_linux.go). A model that asks for more (say ConstantOfShape of
// [2^18, 2^18]) is refused with an error instead of killing the process.
var maxTensorBytes = memoryLimit() / 2

// allocError is raised (as a panic, recovered by the step that allocates and
// returned as its error) when a kernel asks for a tensor over the limit.
type allocError struct {
	bytes, limit uint64
}

func (e *allocError) Error() string {
	return fmt.Sprintf("a tensor of %s exceeds the memory this process may use (%s per tensor)", units.Bytes(e.bytes), units.Bytes(e.limit))
}

// checkAlloc panics with an allocError when n elements of size bytes each
// exceed maxTensorBytes.
func checkAlloc(n, size int) {
	if b := uint64(n) * uint64(size); b > maxTensorBytes {
		panic(&allocError{bytes: b, limit: maxTensorBytes})
	}
}

// recoverKernel turns a panic in a kernel into an error: an allocation over
// the limit, or an internal error (a bug; reported, not a crash).
func recoverKernel(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if ae, ok := r.(*allocError); ok {
		*err = ae
		return
	}
	*err = fmt.Errorf("internal error: %v", r)
}
