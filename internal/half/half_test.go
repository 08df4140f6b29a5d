package half_test

import (
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/internal/half"
)

// TestToFloat32RoundTrip: every non-NaN float16 widens to a float32 that
// narrows back to the same bits, and the known values are what IEEE 754 says.
func TestToFloat32RoundTrip(t *testing.T) {
	for h := range 1 << 16 {
		f := half.ToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			if uint16(h)&0x7c00 != 0x7c00 || uint16(h)&0x3ff == 0 {
				t.Fatalf("%#04x: got NaN from a non-NaN", h)
			}
			continue
		}
		if back := half.FromFloat32(f); back != uint16(h) {
			t.Fatalf("%#04x → %g → %#04x", h, f, back)
		}
	}
	for _, c := range []struct {
		h    uint16
		want float32
	}{{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.960464477539063e-08}, {0x7c00, float32(math.Inf(1))}} {
		if got := half.ToFloat32(c.h); got != c.want {
			t.Errorf("ToFloat32(%#04x) = %g, want %g", c.h, got, c.want)
		}
	}
	if got := half.BFloat16ToFloat32(0x3f80); got != 1 {
		t.Errorf("BFloat16ToFloat32(0x3f80) = %g, want 1", got)
	}
}
