package runtime_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// TestRotaryEmbedding: com.microsoft RotaryEmbedding against a float64
// reference and onnxruntime: 3-D with inferred heads, 4-D interleaved from
// a position offset, partial rotary.
func TestRotaryEmbedding(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	const maxPos = 16
	for _, c := range []struct {
		B, S, N, H, rdim, heads int
		fourD, interleaved      bool
		offset                  int // ≥ 0: one position_ids value
	}{
		{2, 3, 2, 16, 0, 0, false, false, -1},
		{1, 4, 3, 8, 0, 0, true, true, 5},
		{2, 2, 2, 32, 16, 2, false, false, -1},
	} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			R := c.H
			if c.rdim > 0 {
				R = c.rdim
			}
			half := R / 2
			var x *runtime.Tensor
			if c.fourD {
				x = randT(r, c.B, c.N, c.S, c.H)
			} else {
				x = randT(r, c.B, c.S, c.N*c.H)
			}
			cos, sin := randT(r, maxPos, half), randT(r, maxPos, half)
			var pos *runtime.Tensor
			posAt := func(b, s int) int { return c.offset + s }
			if c.offset >= 0 {
				pos = i64(sh(1), int64(c.offset))
			} else {
				pv := make([]int64, c.B*c.S)
				for i := range pv {
					pv[i] = int64(r.IntN(maxPos))
				}
				pos = i64(sh(c.B, c.S), pv...)
				posAt = func(b, s int) int { return int(pv[b*c.S+s]) }
			}
			attrs := []*pb.AttributeProto{onnx.AttrInt("interleaved", boolInt(c.interleaved))}
			if c.rdim > 0 {
				attrs = append(attrs, onnx.AttrInt("rotary_embedding_dim", int64(c.rdim)))
			}
			if c.heads > 0 {
				attrs = append(attrs, onnx.AttrInt("num_heads", int64(c.heads)))
			}
			m, f := msModel("RotaryEmbedding", "com.microsoft", attrs, []*runtime.Tensor{x, pos, cos, sin}, []string{"y"})
			got := runModel(t, m, f)
			xd := x.Float32Data()
			want := make([]float64, len(xd))
			for b := range c.B {
				for n := range c.N {
					for s := range c.S {
						o := (b*c.S+s)*c.N*c.H + n*c.H
						if c.fourD {
							o = ((b*c.N+n)*c.S + s) * c.H
						}
						p := posAt(b, s)
						for d := range c.H {
							want[o+d] = float64(xd[o+d])
						}
						for i := range half {
							a, z := i, i+half
							if c.interleaved {
								a, z = 2*i, 2*i+1
							}
							co, si := float64(cos.Float32Data()[p*half+i]), float64(sin.Float32Data()[p*half+i])
							want[o+a] = float64(xd[o+a])*co - float64(xd[o+z])*si
							want[o+z] = float64(xd[o+z])*co + float64(xd[o+a])*si
						}
					}
				}
			}
			within(t, "RotaryEmbedding", got["y"], want, 1e-6)
			t.Run("onnxruntime", func(t *testing.T) { compareORT(t, m, f, got) })
		})
	}
}
