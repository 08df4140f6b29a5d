package rusage

import "testing"

// TestGrows: a busy loop adds CPU time, and a live allocation shows in the
// peak RSS.
func TestGrows(t *testing.T) {
	c0 := CPU()
	x := 0
	for i := range 50_000_000 {
		x ^= i
	}
	if c1 := CPU(); c1 <= c0 {
		t.Errorf("CPU %v after a busy loop, %v before (x %d)", c1, c0, x)
	}
	b := make([]byte, 64<<20)
	for i := range b {
		b[i] = 1
	}
	if r := PeakRSS(); r < int64(len(b)) {
		t.Errorf("PeakRSS %d with %d bytes live", r, len(b))
	}
}
