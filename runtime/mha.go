package runtime

import (
	"errors"
	"fmt"
)

// com.microsoft MultiHeadAttention, self-attention form (onnxruntime's
// contrib_ops/cpu/bert/multihead_attention.cc): query, key, value [B, S,
// N·H] (3-D, projected already), bias [3·N·H] (optional, added to each),
// key_padding_mask (int32 raw [B, P+S] or [B] lengths), past_key,
// past_value [B, N, P, H]; outputs [B, S, N·H], present_key, present_value
// [B, N, P+S, H]. Masks and scaling as com.microsoft Attention (bertAttend).
// Packed q/k/v, 4-D (cross-attention) keys, attention_bias and the cache
// inputs are refused.
func compileMHA(c *compileCtx) (kernel, error) {
	ba, err := bertAttrsOf(c)
	if err != nil {
		return nil, err
	}
	if len(c.n.in) < 3 || c.n.in[1] < 0 || c.n.in[2] < 0 {
		return nil, errors.New("packed q/k/v (key and value absent) is not supported")
	}
	for i, name := range map[int]string{5: "attention_bias", 8: "past_sequence_length", 9: "cache_indirection"} {
		if i < len(c.n.in) && c.n.in[i] >= 0 {
			return nil, fmt.Errorf("input %s is not supported", name)
		}
	}
	N := ba.heads
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		q, k, v := in[0], in[1], in[2]
		bias, mask, pk, pv := gqaIn(in, 3), gqaIn(in, 4), gqaIn(in, 6), gqaIn(in, 7)
		for _, t := range []*Tensor{q, k, v, bias, pk, pv} {
			if t != nil && t.dtype != Float32 {
				return nil, fmt.Errorf("MultiHeadAttention: %v input, want float32", t.dtype)
			}
		}
		if q.Rank() != 3 || !sameShape(q.shape, k.shape) || !sameShape(q.shape, v.shape) || q.shape[2]%N != 0 {
			return nil, fmt.Errorf("MultiHeadAttention: query %v, key %v, value %v: want equal [B, S, N·H] (self-attention)", q.shape, k.shape, v.shape)
		}
		B, S, D := q.shape[0], q.shape[1], q.shape[2]
		H := D / N
		if bias != nil && bias.Len() != 3*D {
			return nil, fmt.Errorf("MultiHeadAttention: bias of shape %v, want %d values", bias.shape, 3*D)
		}
		if (pk == nil) != (pv == nil) {
			return nil, errors.New("MultiHeadAttention: past_key and past_value go together")
		}
		P := 0
		if pk != nil {
			if pk.Rank() != 4 || pk.shape[0] != B || pk.shape[1] != N || pk.shape[3] != H || !sameShape(pk.shape, pv.shape) {
				return nil, fmt.Errorf("MultiHeadAttention: past of shapes %v and %v, want [%d %d past %d]", pk.shape, pv.shape, B, N, H)
			}
			P = pk.shape[2]
		}
		T := P + S
		add, err := paddingMask(mask, B, T, ba.filter)
		if err != nil {
			return nil, fmt.Errorf("MultiHeadAttention: key_padding_mask: %w", err)
		}
		// Q with its bias, [B, S, D].
		qd := q.Float32Data()
		if bias != nil {
			qb := ec.s.pool.get(B * S * D)
			defer ec.s.pool.put(qb)
			for r := range B * S {
				f32Row(opAdd, qb[r*D:(r+1)*D], qd[r*D:(r+1)*D], bias.Float32Data()[:D], 1, 1)
			}
			qd = qb
		}
		var presents [2]*Tensor
		for i, src := range []*Tensor{k, v} {
			pr := ec.newF32([]int{B, N, T, H})
			pd, sd := pr.Float32Data(), src.Float32Data()
			past := pk
			if i == 1 {
				past = pv
			}
			for b := range B {
				for n := range N {
					base := (b*N + n) * T * H
					if P > 0 {
						copy(pd[base:base+P*H], past.Float32Data()[(b*N+n)*P*H:][:P*H])
					}
					for s := range S {
						row := pd[base+(P+s)*H : base+(P+s+1)*H]
						x := sd[(b*S+s)*D+n*H:][:H]
						if bias != nil {
							f32Row(opAdd, row, x, bias.Float32Data()[(1+i)*D+n*H:][:H], 1, 1)
						} else {
							copy(row, x)
						}
					}
				}
			}
			presents[i] = pr
		}
		out := ec.newF32([]int{B, S, D})
		bertAttend(ec, bertItems{B: B, N: N, S: S, T: T, P: P, H: H, scale: ba.scale, add: add, causal: ba.causal,
			q: qd, qOff: func(b, n int) int { return b*S*D + n*H }, qRS: D,
			k: presents[0].Float32Data(), kOff: func(b, n int) int { return (b*N + n) * T * H },
			v: presents[1].Float32Data(), vOff: func(b, n int) int { return (b*N + n) * T * H },
			out: out.Float32Data(), outOff: func(b, n int) int { return b*S*D + n*H }, ldo: D})
		return []*Tensor{out, presents[0], presents[1]}, nil
	}, nil
}
