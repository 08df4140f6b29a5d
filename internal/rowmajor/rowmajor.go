// Package rowmajor holds the operations on a matrix stored row-major in a
// flat slice that more than one package needs (the test-model generator and
// the recovery's weight reader both turn [out, in] weights into [in, out]).
package rowmajor

// Transpose returns the cols×rows transpose of w, a rows×cols matrix, as a
// new slice. w must hold rows*cols elements.
func Transpose[T any](w []T, rows, cols int) []T {
	t := make([]T, len(w))
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			t[j*rows+i] = w[i*cols+j]
		}
	}
	return t
}
