package runtime_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// msAttentionRef is com.microsoft Attention in float64 from its definition:
// mask_filter_value added where the [B, T] mask is 0 and, when
// unidirectional, nothing seen above the diagonal.
func msAttentionRef(B, S, P, D, N int, uni bool, x, w, bias, past []float32, mask []int32) (out, present []float64) {
	H, T := D/N, P+S
	qkv := make([]float64, B*S*3*D)
	for r := range B * S {
		for j := range 3 * D {
			s := float64(bias[j])
			for i := range D {
				s += float64(x[r*D+i]) * float64(w[i*3*D+j])
			}
			qkv[r*3*D+j] = s
		}
	}
	present = make([]float64, 2*B*N*T*H)
	for kv := range 2 {
		for b := range B {
			for n := range N {
				for j := range T {
					for d := range H {
						o := (((kv*B+b)*N+n)*T+j)*H + d
						if j < P {
							present[o] = float64(past[(((kv*B+b)*N+n)*P+j)*H+d])
						} else {
							present[o] = qkv[(b*S+j-P)*3*D+(1+kv)*D+n*H+d]
						}
					}
				}
			}
		}
	}
	out = make([]float64, B*S*D)
	const filter = -10000.0
	for b := range B {
		for n := range N {
			for s := range S {
				sc := make([]float64, T)
				for j := range T {
					var dot float64
					for d := range H {
						dot += qkv[(b*S+s)*3*D+n*H+d] * present[((b*N+n)*T+j)*H+d]
					}
					sc[j] = dot / math.Sqrt(float64(H))
					if mask != nil && mask[b*T+j] == 0 {
						sc[j] += filter
					}
					if uni && j > P+s {
						sc[j] = math.Inf(-1)
					}
				}
				softmaxRef(sc)
				for j := range T {
					for d := range H {
						out[(b*S+s)*D+n*H+d] += sc[j] * present[(((B+b)*N+n)*T+j)*H+d]
					}
				}
			}
		}
	}
	return out, present
}

// bertCase is a case of the com.microsoft Attention and MultiHeadAttention
// tests: batch, new and past lengths, causal or not, and the padding mask.
type bertCase struct {
	name    string
	B, S, P int
	uni     bool
	pad     int // leading zeros in row 0's mask (-1: no mask)
}

var bertCases = []bertCase{
	{"causal_prompt_padded", 2, 5, 0, true, 2},
	{"causal_past", 2, 2, 3, true, 0},
	{"bidirectional_no_mask", 1, 4, 0, false, -1},
}

// mask is the case's raw 0/1 [B, T] mask as a tensor and as values (nil, nil
// without one).
func (c bertCase) mask(T int) (*runtime.Tensor, []int32) {
	if c.pad < 0 {
		return nil, nil
	}
	maskD := make([]int32, c.B*T)
	for i := range maskD {
		if i >= c.pad {
			maskD[i] = 1
		}
	}
	return i32(sh(c.B, T), maskD...), maskD
}

// The com.microsoft attention tests' model width and heads.
const msD, msN = 32, 4

// forBertCases runs op (num_heads msN, unidirectional as the case says) on
// each of bertCases and compares its outputs with msAttentionRef's and with
// onnxruntime's. x [B, S, D], w [D, 3D] and bias [3D] are drawn first from a
// generator seeded with seed; inputs builds the op's inputs from them and
// the case's mask (trailing nil ones are dropped) and returns the past as
// msAttentionRef reads it. outs are the op's outputs: "out" and "present",
// or "out", "present_key" and "present_value" (the halves of present).
func forBertCases(t *testing.T, seed uint64, op string, outs []string,
	inputs func(c bertCase, r *rand.Rand, x, w, bias, mask *runtime.Tensor) (in []*runtime.Tensor, past []float32)) {
	r := rand.New(rand.NewPCG(seed, seed))
	const D, N = msD, msN
	for _, c := range bertCases {
		t.Run(c.name, func(t *testing.T) {
			x, w, bias := randT(r, c.B, c.S, D), randT(r, D, 3*D), randT(r, 3*D)
			mask, maskD := c.mask(c.P + c.S)
			in, pastD := inputs(c, r, x, w, bias, mask)
			for in[len(in)-1] == nil {
				in = in[:len(in)-1]
			}
			attrs := []*pb.AttributeProto{onnx.AttrInt("num_heads", N), onnx.AttrInt("unidirectional", boolInt(c.uni))}
			m, f := msModel(op, "com.microsoft", attrs, in, outs)
			got := runModel(t, m, f)
			out, present := msAttentionRef(c.B, c.S, c.P, D, N, c.uni, x.Float32Data(), w.Float32Data(), bias.Float32Data(), pastD, maskD)
			within(t, "output", got["out"], out, 1e-5)
			if len(outs) == 2 {
				within(t, "present", got["present"], present, 1e-5)
			} else {
				within(t, "present_key", got["present_key"], present[:len(present)/2], 1e-5)
				within(t, "present_value", got["present_value"], present[len(present)/2:], 1e-5)
			}
			t.Run("onnxruntime", func(t *testing.T) { compareORT(t, m, f, got) })
		})
	}
}

func TestMSAttention(t *testing.T) {
	forBertCases(t, 9, "Attention", []string{"out", "present"}, func(c bertCase, r *rand.Rand, x, w, bias, mask *runtime.Tensor) ([]*runtime.Tensor, []float32) {
		var past *runtime.Tensor
		var pastD []float32
		if c.P > 0 {
			past = randT(r, 2, c.B, msN, c.P, msD/msN)
			pastD = past.Float32Data()
		}
		return []*runtime.Tensor{x, w, bias, mask, past}, pastD
	})
}

// TestMultiHeadAttention: MultiHeadAttention on projected q, k, v equals the
// Attention reference on the input and weights that project them (same
// masks, past and bias), and onnxruntime.
func TestMultiHeadAttention(t *testing.T) {
	const D, N = msD, msN
	outs := []string{"out", "present_key", "present_value"}
	forBertCases(t, 12, "MultiHeadAttention", outs, func(c bertCase, r *rand.Rand, x, w, bias, mask *runtime.Tensor) ([]*runtime.Tensor, []float32) {
		proj := make([]*runtime.Tensor, 3)
		for p := range 3 {
			v := make([]float32, c.B*c.S*D)
			for row := range c.B * c.S {
				for j := range D {
					var s float64
					for i := range D {
						s += float64(x.Float32Data()[row*D+i]) * float64(w.Float32Data()[i*3*D+p*D+j])
					}
					v[row*D+j] = float32(s)
				}
			}
			proj[p] = f32(sh(c.B, c.S, D), v...)
		}
		var pastD []float32
		in := []*runtime.Tensor{proj[0], proj[1], proj[2], bias, mask, nil, nil, nil}
		if c.P > 0 {
			pk, pv := randT(r, c.B, N, c.P, D/N), randT(r, c.B, N, c.P, D/N)
			in[6], in[7] = pk, pv
			pastD = append(append([]float32{}, pk.Float32Data()...), pv.Float32Data()...)
		}
		return in, pastD
	})
}
