package runtime

import (
	"fmt"
	"math"
)

// SameBits compares two float32 tensors bit for bit.
func SameBits(got, want *Tensor) error {
	if got.dtype != want.dtype {
		return fmt.Errorf("got %v, want %v", got.dtype, want.dtype)
	}
	g, w := got.Float32Data(), want.Float32Data()
	if len(g) != len(w) {
		return fmt.Errorf("got %d values, want %d", len(g), len(w))
	}
	for i := range g {
		if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
			return fmt.Errorf("value %d: got %v (%#08x), want %v (%#08x)", i, g[i], math.Float32bits(g[i]), w[i], math.Float32bits(w[i]))
		}
	}
	return nil
}

// RunsAgree runs s twice on feeds, fetching fetch (the first Run of a shape
// is unfused, the second fused), and reports the first output in *ref whose
// bits either run changes; a nil *ref takes the first run's outputs.
func RunsAgree(s *Session, feeds map[string]*Tensor, fetch []string, ref *map[string]*Tensor) error {
	for run := range 2 {
		out, err := s.Run(feeds, fetch)
		if err != nil {
			return err
		}
		if *ref == nil {
			*ref = out
			continue
		}
		for name, want := range *ref {
			if err := SameBits(out[name], want); err != nil {
				return fmt.Errorf("run %d, %s: %w", run, name, err)
			}
		}
	}
	return nil
}
