package runtime

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

// com.microsoft Attention, the fused self-attention of onnxruntime's
// transformer optimizer (Olive) for GPT-2-style models, as its CPU kernel
// computes it (contrib_ops/cpu/bert/attention.cc, attention_cpu_base.h):
//
// Inputs: input [B, S, D_in], weights [D_in, 3·D] (qkv_hidden_sizes, if
// given, three equal sizes), bias [q + k + v], mask_index (int32 raw 0/1
// mask [B, P + S], or right-padding lengths [B]), past [2, B, N, P, H];
// attention_bias and past_sequence_length are refused.
//
// Q, K, V = input·weights + bias, per head; K and V follow the past
// (present [2, B, N, P + S, H]); scores = scale·Q·Kᵀ (scale 0: 1/√H) plus
// mask_filter_value (default −10000) where the mask is 0, plus it again
// above the diagonal when unidirectional; softmax; ·V; output [B, S, v].
func compileMSAttention(c *compileCtx) (kernel, error) {
	ba, err := bertAttrsOf(c, "qkv_hidden_sizes")
	if err != nil {
		return nil, err
	}
	sizes, hasSizes, err := c.attrs.ints("qkv_hidden_sizes")
	if err != nil {
		return nil, err
	}
	if hasSizes && (len(sizes) != 3 || sizes[0] != sizes[1] || sizes[1] != sizes[2]) {
		return nil, fmt.Errorf("qkv_hidden_sizes %v: only three equal sizes are supported", sizes)
	}
	for i, name := range map[int]string{5: "attention_bias", 6: "past_sequence_length"} {
		if i < len(c.n.in) && c.n.in[i] >= 0 {
			return nil, fmt.Errorf("input %s is not supported", name)
		}
	}
	N := ba.heads
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x, w, bias, mask, past := in[0], in[1], gqaIn(in, 2), gqaIn(in, 3), gqaIn(in, 4)
		for _, t := range []*Tensor{x, w, bias, past} {
			if t != nil && t.dtype != Float32 {
				return nil, fmt.Errorf("Attention: %v input, want float32", t.dtype)
			}
		}
		if x.Rank() != 3 || w.Rank() != 2 || w.shape[0] != x.shape[2] {
			return nil, fmt.Errorf("Attention: input %v and weights %v", x.shape, w.shape)
		}
		B, S, Din := x.shape[0], x.shape[1], x.shape[2]
		tot := w.shape[1]
		qh, vh := tot/3, tot/3
		if hasSizes {
			qh, vh = int(sizes[0]), int(sizes[2])
		}
		if 2*qh+vh != tot || qh%N != 0 || qh == 0 {
			return nil, fmt.Errorf("Attention: weights %v do not split into q, k, v of %d heads", w.shape, N)
		}
		if bias != nil && bias.Len() != tot {
			return nil, fmt.Errorf("Attention: bias of shape %v, want %d values", bias.shape, tot)
		}
		H := qh / N
		P := 0
		if past != nil {
			if past.Rank() != 5 || past.shape[0] != 2 || past.shape[1] != B || past.shape[2] != N || past.shape[4] != H {
				return nil, fmt.Errorf("Attention: past of shape %v, want [2 %d %d past %d]", past.shape, B, N, H)
			}
			P = past.shape[3]
		}
		T := P + S
		add, err := paddingMask(mask, B, T, ba.filter)
		if err != nil {
			return nil, err
		}
		// QKV projection [B·S, tot].
		qkv := ec.s.pool.get(B * S * tot)
		defer ec.s.pool.put(qkv)
		kernels.Sgemm(ec.threads, B*S, tot, Din, 1, kernels.MatView{Data: x.Float32Data(), RS: Din, CS: 1},
			kernels.MatView{Data: w.Float32Data(), RS: tot, CS: 1}, 0, qkv, tot)
		if bias != nil {
			bd := bias.Float32Data()
			for r := range B * S {
				f32Row(opAdd, qkv[r*tot:(r+1)*tot], qkv[r*tot:(r+1)*tot], bd, 1, 1)
			}
		}
		// present [2, B, N, T, H]: past then the new k, v.
		present := ec.newF32([]int{2, B, N, T, H})
		pd := present.Float32Data()
		for kv := range 2 {
			for b := range B {
				for n := range N {
					base := (((kv*B+b)*N + n) * T) * H
					if P > 0 {
						po := (((kv*B+b)*N + n) * P) * H
						copy(pd[base:base+P*H], past.Float32Data()[po:po+P*H])
					}
					for s := range S {
						src := (b*S+s)*tot + qh*(1+kv) + n*H
						copy(pd[base+(P+s)*H:base+(P+s+1)*H], qkv[src:src+H])
					}
				}
			}
		}
		out := ec.newF32([]int{B, S, vh})
		bertAttend(ec, bertItems{B: B, N: N, S: S, T: T, P: P, H: H, scale: ba.scale, add: add, causal: ba.causal,
			q: qkv, qOff: func(b, n int) int { return b*S*tot + n*H }, qRS: tot,
			k: pd, kOff: func(b, n int) int { return ((b*N + n) * T) * H },
			v: pd, vOff: func(b, n int) int { return (((B+b)*N + n) * T) * H },
			out: out.Float32Data(), outOff: func(b, n int) int { return b*S*vh + n*H }, ldo: vh})
		return []*Tensor{out, present}, nil
	}, nil
}

// bertAttrs are the attributes of com.microsoft Attention and
// MultiHeadAttention that set up bertAttend's masking and scaling.
type bertAttrs struct {
	heads  int
	causal bool    // unidirectional
	filter float32 // mask_filter_value, added where the mask is 0
	scale  float32 // 0: 1/√H
}

// bertAttrsOf reads num_heads (> 0), unidirectional, mask_filter_value
// (default −10000) and scale, refusing attributes other than those and more.
func bertAttrsOf(c *compileCtx, more ...string) (bertAttrs, error) {
	r := c.read(append([]string{"num_heads", "unidirectional", "mask_filter_value", "scale"}, more...)...)
	heads, uni := r.int("num_heads", 0), r.int("unidirectional", 0)
	filter, scale := r.float("mask_filter_value", -10000), r.float("scale", 0)
	if r.err != nil {
		return bertAttrs{}, r.err
	}
	if heads <= 0 {
		return bertAttrs{}, fmt.Errorf("num_heads %d", heads)
	}
	return bertAttrs{heads: int(heads), causal: uni != 0, filter: filter, scale: scale}, nil
}

// paddingMask turns mask_index (nil, a raw 0/1 [B, T] mask or [B] valid
// lengths) into additive rows [B, T]: filter where masked, else 0.
func paddingMask(mask *Tensor, B, T int, filter float32) ([]float32, error) {
	if mask == nil {
		return nil, nil
	}
	mv, err := intsOf2(mask)
	if err != nil {
		return nil, err
	}
	add := make([]float32, B*T)
	switch {
	case len(mv) == B*T && mask.Rank() == 2:
		for i, m := range mv {
			if m <= 0 {
				add[i] = filter
			}
		}
	case len(mv) == B && mask.Rank() == 1:
		for b, end := range mv {
			for j := max(int(end), 0); j < T; j++ {
				add[b*T+j] = filter
			}
		}
	default:
		return nil, fmt.Errorf("mask of shape %v: only a raw [B, P+S] mask or [B] lengths are supported", mask.shape)
	}
	return add, nil
}

// bertItems is one attention over (batch, head) items whose present keys
// and values are laid out [T, H] per item: the shared core of
// com.microsoft Attention and MultiHeadAttention.
type bertItems struct {
	B, N, S, T, P, H int
	scale            float32
	add              []float32 // [B, T] additive padding mask, or nil
	causal           bool
	q, k, v, out     []float32
	qOff, kOff, vOff func(b, n int) int
	outOff           func(b, n int) int
	qRS, ldo         int
}

// bertAttend computes softmax(scale·Q·Kᵀ + padding, causal)·V per item:
// padding adds mask_filter_value; the causal mask is the lowest float32
// (onnxruntime's PrepareMask), so a query whose visible keys are all padding
// still attends to them, never to later keys.
func bertAttend(ec *execCtx, a bertItems) {
	sc := a.scale
	if sc == 0 {
		sc = float32(1 / math.Sqrt(float64(a.H)))
	}
	S, T, H := a.S, a.T, a.H
	threads, inner := ec.threads, 1
	if a.B*a.N < threads {
		threads, inner = 1, ec.threads
	}
	parallelFor(threads, a.B*a.N, S*T*H*2, func(lo, hi int) {
		scores := ec.s.pool.get(S * T)
		defer ec.s.pool.put(scores)
		for it := lo; it < hi; it++ {
			b, n := it/a.N, it%a.N
			kernels.Sgemm(inner, S, T, H, sc, kernels.MatView{Data: a.q, Off: a.qOff(b, n), RS: a.qRS, CS: 1},
				kernels.MatView{Data: a.k, Off: a.kOff(b, n), RS: 1, CS: H}, 0, scores, T)
			for s := range S {
				row := scores[s*T : (s+1)*T]
				if a.add != nil {
					f32Row(opAdd, row, row, a.add[b*T:(b+1)*T], 1, 1)
				}
				if a.causal {
					for j := a.P + s + 1; j < T; j++ {
						row[j] = -math.MaxFloat32
					}
				}
				softmaxRow(row, row, false)
			}
			kernels.Sgemm(inner, S, H, T, 1, kernels.MatView{Data: scores, RS: T, CS: 1},
				kernels.MatView{Data: a.v, Off: a.vOff(b, n), RS: H, CS: 1}, 0, a.out[a.outOff(b, n):], a.ldo)
		}
	})
}

// intsOf2 reads an int32 or int64 tensor of any rank.
func intsOf2(t *Tensor) ([]int64, error) {
	if t.dtype != Int32 && t.dtype != Int64 {
		return nil, errors.New("Attention: mask_index must be int32")
	}
	return t.Int64s()
}
