package runtime_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// TestAttention23: ONNX Attention (opset 23) against a float64 reference and
// onnxruntime: 4-D GQA with a past, causal, a bool mask; 3-D with a float
// mask.
func TestAttention23(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	for _, c := range []struct {
		B, N, KV, S, P, H int
		threeD, causal    bool
		mask              string // "", "bool", "float"
	}{
		{2, 4, 2, 3, 4, 16, false, true, "bool"},
		{1, 4, 4, 5, 0, 8, false, true, ""},
		{2, 6, 3, 4, 0, 8, true, false, "float"},
		{1, 2, 1, 2, 3, 8, true, true, "float"},
	} {
		t.Run(fmt.Sprintf("B%d_N%d_KV%d_S%d_P%d_3d%v_causal%v_%s", c.B, c.N, c.KV, c.S, c.P, c.threeD, c.causal, c.mask), func(t *testing.T) {
			T := c.P + c.S
			q4, k4, v4 := randT(r, c.B, c.N, c.S, c.H), randT(r, c.B, c.KV, c.S, c.H), randT(r, c.B, c.KV, c.S, c.H)
			q, k, v := q4, k4, v4
			if c.threeD { // [B, S, heads·H] of the same values
				q, k, v = toBSD(q4), toBSD(k4), toBSD(v4)
			}
			var pk, pv *runtime.Tensor
			if c.P > 0 {
				pk, pv = randT(r, c.B, c.KV, c.P, c.H), randT(r, c.B, c.KV, c.P, c.H)
			}
			var mask *runtime.Tensor
			maskAt := func(b, n, s, j int) (float64, bool) { return 0, true }
			switch c.mask {
			case "bool":
				m := make([]bool, c.B*c.S*T)
				for i := range m {
					m[i] = i%T != 1 // key 1 hidden from every query (onnxruntime wants the S axis)
				}
				mask = mustT(runtime.FromSlice(sh(c.B, 1, c.S, T), m))
				maskAt = func(b, n, s, j int) (float64, bool) { return 0, m[(b*c.S+s)*T+j] }
			case "float":
				mt := randT(r, c.S, T)
				mask = mt
				maskAt = func(b, n, s, j int) (float64, bool) { return float64(mt.Float32Data()[s*T+j]), true }
			}
			attrs := []*pb.AttributeProto{onnx.AttrInt("is_causal", boolInt(c.causal))}
			if c.threeD {
				attrs = append(attrs, onnx.AttrInt("q_num_heads", int64(c.N)), onnx.AttrInt("kv_num_heads", int64(c.KV)))
			}
			m, f := msModel("Attention", "", attrs, []*runtime.Tensor{q, k, v, mask, pk, pv}, []string{"y", "present_key", "present_value"})
			m.OpsetImport[0].Version = proto64(23)
			got := runModel(t, m, f)
			// Reference.
			at := func(t4 *runtime.Tensor, past *runtime.Tensor, b, h, j, d int) float64 {
				if j < c.P {
					return float64(past.Float32Data()[((b*c.KV+h)*c.P+j)*c.H+d])
				}
				return float64(t4.Float32Data()[((b*c.KV+h)*c.S+j-c.P)*c.H+d])
			}
			var want, wantK []float64
			for b := range c.B {
				for h := range c.KV {
					for j := range T {
						for d := range c.H {
							wantK = append(wantK, at(k4, pk, b, h, j, d))
						}
					}
				}
			}
			y := make([]float64, c.B*c.N*c.S*c.H)
			for b := range c.B {
				for n := range c.N {
					h := n / (c.N / c.KV)
					for s := range c.S {
						sc := make([]float64, T)
						for j := range T {
							var dot float64
							for d := range c.H {
								dot += float64(q4.Float32Data()[((b*c.N+n)*c.S+s)*c.H+d]) * at(k4, pk, b, h, j, d)
							}
							add, ok := maskAt(b, n, s, j)
							sc[j] = dot/math.Sqrt(float64(c.H)) + add
							if !ok || c.causal && j > c.P+s {
								sc[j] = math.Inf(-1)
							}
						}
						softmaxRef(sc)
						for j := range T {
							for d := range c.H {
								o := ((b*c.N+n)*c.S+s)*c.H + d // [B, N, S, H]
								if c.threeD {
									o = (b*c.S+s)*c.N*c.H + n*c.H + d
								}
								y[o] += sc[j] * at(v4, pv, b, h, j, d)
							}
						}
					}
				}
			}
			want = y
			within(t, "Y", got["y"], want, 1e-5)
			within(t, "present_key", got["present_key"], wantK, 0)
			t.Run("onnxruntime", func(t *testing.T) { compareORT(t, m, f, got) })
		})
	}
}

// toBSD turns [B, N, S, H] into [B, S, N·H].
func toBSD(x *runtime.Tensor) *runtime.Tensor {
	s := x.Shape()
	B, N, S, H := s[0], s[1], s[2], s[3]
	d := x.Float32Data()
	out := make([]float32, len(d))
	for b := range B {
		for n := range N {
			for i := range S {
				copy(out[(b*S+i)*N*H+n*H:][:H], d[((b*N+n)*S+i)*H:][:H])
			}
		}
	}
	return f32(sh(B, S, N*H), out...)
}

func proto64(v int64) *int64 { return &v }
