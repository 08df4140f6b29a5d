package runtime

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

// ONNX Attention (opset 23), what torch.onnx.export(dynamo=True) writes for
// scaled_dot_product_attention at opset 23:
//
// Q [B, N, S, H] (or [B, S, N·H] with q_num_heads), K [B, KV, L, H], V [B,
// KV, L, Hv] (or 3-D likewise), attn_mask (bool: attend where true; float:
// added) broadcast to [B, N, S, P+L], past_key / past_value [B, KV, P, H];
// present = past followed by K (V). scores = scale·Q·Kᵀ (scale 0: 1/√H), plus
// the mask, with is_causal also −∞ above the diagonal aligned to the last
// query (key j is hidden from query s when j > P + s); softmax; ·V. Y has Q's
// rank. Query head n reads kv head n / (N/KV). softcap and the qk output are
// refused.
func compileAttention23(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("is_causal", "kv_num_heads", "q_num_heads", "qk_matmul_output_mode", "scale", "softcap", "softmax_precision"); err != nil {
		return nil, err
	}
	iv := map[string]int64{"is_causal": 0, "kv_num_heads": 0, "q_num_heads": 0, "qk_matmul_output_mode": 0, "softmax_precision": 0}
	for name, def := range iv {
		v, err := c.attrs.int(name, def)
		if err != nil {
			return nil, err
		}
		iv[name] = v
	}
	scale, err := c.attrs.float("scale", 0)
	if err != nil {
		return nil, err
	}
	if sc, err := c.attrs.float("softcap", 0); err != nil || sc != 0 {
		return nil, errors.New("softcap is not supported")
	}
	if iv["qk_matmul_output_mode"] != 0 || len(c.n.out) > 3 && c.n.out[3] >= 0 {
		return nil, errors.New("the qk_matmul output is not supported")
	}
	if len(c.n.in) > 6 && c.n.in[6] >= 0 {
		return nil, errors.New("input nonpad_kv_seqlen is not supported")
	}
	causal := iv["is_causal"] != 0
	qHeads, kvHeads := int(iv["q_num_heads"]), int(iv["kv_num_heads"])
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		q, k, v := in[0], in[1], in[2]
		mask, pk, pv := gqaIn(in, 3), gqaIn(in, 4), gqaIn(in, 5)
		for _, t := range []*Tensor{q, k, v, pk, pv} {
			if t != nil && t.dtype != Float32 {
				return nil, fmt.Errorf("Attention: %v input, want float32", t.dtype)
			}
		}
		// Views as [B, heads, seq, head] with strides (3-D inputs are
		// [B, seq, heads·head]).
		type view struct {
			B, Nh, L, H int
			sb, sn, sl  int
			data        []float32
		}
		as4 := func(t *Tensor, heads int, what string) (view, error) {
			switch t.Rank() {
			case 4:
				s := t.shape
				return view{s[0], s[1], s[2], s[3], s[1] * s[2] * s[3], s[2] * s[3], s[3], t.Float32Data()}, nil
			case 3:
				s := t.shape
				if heads <= 0 || s[2]%heads != 0 {
					return view{}, fmt.Errorf("Attention: 3-D %s of shape %v needs q_num_heads/kv_num_heads", what, s)
				}
				h := s[2] / heads
				return view{s[0], heads, s[1], h, s[1] * s[2], h, s[2], t.Float32Data()}, nil
			}
			return view{}, fmt.Errorf("Attention: %s of shape %v, want rank 3 or 4", what, t.shape)
		}
		Q, err := as4(q, qHeads, "Q")
		if err != nil {
			return nil, err
		}
		K, err := as4(k, kvHeads, "K")
		if err != nil {
			return nil, err
		}
		V, err := as4(v, kvHeads, "V")
		if err != nil {
			return nil, err
		}
		B, N, S, H := Q.B, Q.Nh, Q.L, Q.H
		KV, L, Hv := K.Nh, K.L, V.H
		if K.B != B || V.B != B || V.Nh != KV || V.L != L || K.H != H || KV == 0 || N%KV != 0 {
			return nil, fmt.Errorf("Attention: Q %v, K %v, V %v do not fit", q.shape, k.shape, v.shape)
		}
		P := 0
		if (pk == nil) != (pv == nil) {
			return nil, errors.New("Attention: past_key and past_value go together")
		}
		if pk != nil {
			if pk.Rank() != 4 || pv.Rank() != 4 || pk.shape[0] != B || pk.shape[1] != KV || pk.shape[3] != H ||
				pv.shape[0] != B || pv.shape[1] != KV || pv.shape[2] != pk.shape[2] || pv.shape[3] != Hv {
				return nil, fmt.Errorf("Attention: past %v and %v for K %v", pk.shape, pv.shape, k.shape)
			}
			P = pk.shape[2]
		}
		T := P + L
		// present k, v [B, KV, T, ·].
		presK, presV := ec.newF32([]int{B, KV, T, H}), ec.newF32([]int{B, KV, T, Hv})
		kd, vd := presK.Float32Data(), presV.Float32Data()
		for b := range B {
			for h := range KV {
				for j := range T {
					for _, p := range []struct {
						dst  []float32
						src  view
						past *Tensor
						w    int
					}{{kd, K, pk, H}, {vd, V, pv, Hv}} {
						o := ((b*KV+h)*T + j) * p.w
						if j < P {
							po := ((b*KV+h)*P + j) * p.w
							copy(p.dst[o:o+p.w], p.past.Float32Data()[po:po+p.w])
						} else {
							so := b*p.src.sb + h*p.src.sn + (j-P)*p.src.sl
							copy(p.dst[o:o+p.w], p.src.data[so:so+p.w])
						}
					}
				}
			}
		}
		// The mask's strides over [B, N, S, T] (0 where broadcast).
		var mst []int
		if mask != nil {
			if mask.dtype != Float32 && mask.dtype != Bool {
				return nil, fmt.Errorf("Attention: attn_mask of %v, want bool or float32", mask.dtype)
			}
			full := []int{B, N, S, T}
			if b, err := broadcastShape(full, mask.shape); err != nil || !sameShape(b, full) {
				return nil, fmt.Errorf("Attention: attn_mask of shape %v does not broadcast to %v", mask.shape, full)
			}
			mst = broadcastStrides(mask.shape, stridesOf(mask.shape), 4)
		}
		sc := scale
		if sc == 0 {
			sc = float32(1 / math.Sqrt(float64(H)))
		}
		shape := []int{B, N, S, Hv}
		ost := []int{N * S * Hv, S * Hv, Hv} // [B, N, S, Hv]
		if q.Rank() == 3 {
			shape = []int{B, S, N * Hv}
			ost = []int{S * N * Hv, Hv, N * Hv} // batch, head, row strides of [B, S, N·Hv]
		}
		out := ec.newF32(shape)
		od := out.Float32Data()
		group := N / KV
		threads, inner := ec.threads, 1
		if B*N < threads {
			threads, inner = 1, ec.threads
		}
		neg := float32(math.Inf(-1))
		parallelFor(threads, B*N, S*T*H*2, func(lo, hi int) {
			scores := ec.s.pool.get(S * T)
			defer ec.s.pool.put(scores)
			for it := lo; it < hi; it++ {
				b, n := it/N, it%N
				kvo := (b*KV + n/group) * T
				kernels.Sgemm(inner, S, T, H, sc, kernels.MatView{Data: Q.data, Off: b*Q.sb + n*Q.sn, RS: Q.sl, CS: 1},
					kernels.MatView{Data: kd, Off: kvo * H, RS: 1, CS: H}, 0, scores, T)
				for s := range S {
					row := scores[s*T : (s+1)*T]
					if mst != nil {
						o := b*mst[0] + n*mst[1] + s*mst[2]
						switch md := mask.data.(type) {
						case []bool:
							for j := range row {
								if !md[o+j*mst[3]] {
									row[j] = neg
								}
							}
						case []float32:
							for j := range row {
								row[j] += md[o+j*mst[3]]
							}
						}
					}
					if causal {
						for j := P + s + 1; j < T; j++ {
							row[j] = neg
						}
					}
					softmaxRow(row, row, false)
				}
				kernels.Sgemm(inner, S, Hv, T, 1, kernels.MatView{Data: scores, RS: T, CS: 1},
					kernels.MatView{Data: vd, Off: kvo * Hv, RS: Hv, CS: 1}, 0, od[b*ost[0]+n*ost[1]:], ost[2])
			}
		})
		return []*Tensor{out, presK, presV}, nil
	}, nil
}
