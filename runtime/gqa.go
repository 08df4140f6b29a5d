package runtime

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

// com.microsoft GroupQueryAttention as onnxruntime's CPU kernel computes it
// (contrib_ops/cpu/bert/group_query_attention.cc, gqa_attention_base.h,
// group_query_attention_helper.h):
//
// Inputs: query [B, S, N·H] (or packed q|k|v [B, S, (N + 2·kvN)·H] when key
// and value are absent), key, value [B, S, kvN·H], past_key, past_value
// [B, kvN, P, H] (BNSH), seqlens_k [B] int32 (each row's total length − 1),
// total_sequence_length (scalar int32), cos_cache, sin_cache [maxPos, R/2];
// position_ids, attention_bias and head_sink are refused.
//
// Row b has total_b = seqlens_k[b] + 1 tokens of which the last S are new:
// past_b = total_b − S, except on the first prompt (S equal to
// total_sequence_length), where past_b = 0. With do_rotary the new q and k
// are rotated at positions past_b + s (s for the first prompt), by the first
// R dimensions (half-split, or pairs when rotary_interleaved). present =
// past[:past_b] followed by the new k (v), in a buffer of max(P,
// total_sequence_length) positions (zeros past the end). Query head n reads
// kv head n / (N/kvN); position s sees keys [start, past_b + s] with start = 0,
// or past_b + s + 1 − local_window_size when a window (> 0) is set: the last
// local_window_size keys, itself included (measured on onnxruntime 1.30;
// older sources read one key more); scores are
// scale·q·k (scale 0 means 1/√H), softcapped by c·tanh(x/c) when softcap > 0,
// then softmaxed. Output [B, S, N·H].

type gqaAttrs struct {
	heads, kvHeads  int
	scale, softcap  float32
	window          int
	rotary, interlv bool
}

func compileGQA(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("num_heads", "kv_num_heads", "scale", "softcap", "local_window_size",
		"do_rotary", "rotary_interleaved", "smooth_softmax", "qk_output"); err != nil {
		return nil, err
	}
	iv := map[string]int64{"num_heads": 0, "kv_num_heads": 0, "local_window_size": -1, "do_rotary": 0,
		"rotary_interleaved": 0, "smooth_softmax": 0, "qk_output": 0}
	for name, def := range iv {
		v, err := c.attrs.int(name, def)
		if err != nil {
			return nil, err
		}
		iv[name] = v
	}
	if iv["smooth_softmax"] != 0 || iv["qk_output"] != 0 {
		return nil, errors.New("smooth_softmax and qk_output are not supported")
	}
	a := gqaAttrs{heads: int(iv["num_heads"]), kvHeads: int(iv["kv_num_heads"]), window: int(iv["local_window_size"]),
		rotary: iv["do_rotary"] != 0, interlv: iv["rotary_interleaved"] != 0}
	var err error
	if a.scale, err = c.attrs.float("scale", 0); err != nil {
		return nil, err
	}
	if a.softcap, err = c.attrs.float("softcap", 0); err != nil {
		return nil, err
	}
	if a.heads <= 0 || a.kvHeads <= 0 || a.heads%a.kvHeads != 0 {
		return nil, fmt.Errorf("num_heads %d, kv_num_heads %d: want positive, num_heads a multiple of kv_num_heads", a.heads, a.kvHeads)
	}
	for i, name := range map[int]string{9: "position_ids", 10: "attention_bias", 11: "head_sink"} {
		if i < len(c.n.in) && c.n.in[i] >= 0 {
			return nil, fmt.Errorf("input %s is not supported", name)
		}
	}
	if len(c.n.in) < 7 || c.n.in[5] < 0 || c.n.in[6] < 0 {
		return nil, errors.New("seqlens_k and total_sequence_length are required")
	}
	if a.rotary && (len(c.n.in) < 9 || c.n.in[7] < 0 || c.n.in[8] < 0) {
		return nil, errors.New("do_rotary needs cos_cache and sin_cache")
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		return gqa(ec, a, in)
	}, nil
}

// gqaIn returns input i or nil.
func gqaIn(in []*Tensor, i int) *Tensor {
	if i < len(in) {
		return in[i]
	}
	return nil
}

func gqa(ec *execCtx, a gqaAttrs, in []*Tensor) ([]*Tensor, error) {
	q, k, v := in[0], gqaIn(in, 1), gqaIn(in, 2)
	pk, pv := gqaIn(in, 3), gqaIn(in, 4)
	for _, t := range []*Tensor{q, k, v, pk, pv, gqaIn(in, 7), gqaIn(in, 8)} {
		if t != nil && t.dtype != Float32 {
			return nil, fmt.Errorf("GroupQueryAttention: %v input, want float32", t.dtype)
		}
	}
	if q.Rank() != 3 {
		return nil, fmt.Errorf("query of shape %v, want [batch, sequence, hidden]", q.shape)
	}
	B, S := q.shape[0], q.shape[1]
	N, KV := a.heads, a.kvHeads
	packed := k == nil
	var H int
	if packed {
		if v != nil || q.shape[2]%(N+2*KV) != 0 {
			return nil, fmt.Errorf("packed query of shape %v does not hold %d + 2·%d heads", q.shape, N, KV)
		}
		H = q.shape[2] / (N + 2*KV)
	} else {
		if v == nil || q.shape[2]%N != 0 {
			return nil, fmt.Errorf("query of shape %v for %d heads (value missing?)", q.shape, N)
		}
		H = q.shape[2] / N
		for _, t := range []*Tensor{k, v} {
			if !sameShape(t.shape, []int{B, S, KV * H}) {
				return nil, fmt.Errorf("key/value of shape %v, want [%d %d %d]", t.shape, B, S, KV*H)
			}
		}
	}
	if H == 0 {
		return nil, errors.New("head size 0")
	}
	P := 0
	if (pk == nil) != (pv == nil) {
		return nil, errors.New("past_key and past_value must both be given or both absent")
	}
	// An empty past may have any head size (lm.Feeds sets symbolic
	// dimensions of an empty past to 1).
	if pk != nil && (pk.Len() != 0 || pv.Len() != 0) {
		if pk.Rank() != 4 || pk.shape[0] != B || pk.shape[1] != KV || pk.shape[3] != H || !sameShape(pk.shape, pv.shape) {
			return nil, fmt.Errorf("past of shapes %v and %v, want [%d %d past %d]", pk.shape, pv.shape, B, KV, H)
		}
		P = pk.shape[2]
	}
	seqlens, err := intsOf(in[5], "seqlens_k")
	if err != nil {
		return nil, err
	}
	if len(seqlens) != B {
		return nil, fmt.Errorf("seqlens_k has %d values for batch %d", len(seqlens), B)
	}
	tot, err := intsOf(in[6], "total_sequence_length")
	if err != nil || len(tot) != 1 {
		return nil, fmt.Errorf("total_sequence_length: want one int32 value (%v)", err)
	}
	T := int(tot[0])
	if T < S || T > 1<<24 {
		return nil, fmt.Errorf("total_sequence_length %d for %d new tokens", T, S)
	}
	first := S == T
	Tp := max(P, T) // present buffer length
	pastOf := make([]int, B)
	totalOf := make([]int, B)
	for b, sl := range seqlens {
		tb := int(sl) + 1
		pb := tb - S
		if first {
			pb = 0
		}
		if tb < 1 || tb > Tp || pb < 0 || pb > P || pb+S > Tp {
			return nil, fmt.Errorf("seqlens_k[%d] = %d does not fit %d new tokens over a past of %d (total %d)", b, sl, S, P, T)
		}
		pastOf[b], totalOf[b] = pb, tb
	}
	var cos, sin []float32
	half := 0
	if a.rotary {
		cc, sc := in[7], in[8]
		if cc.Rank() != 2 || !sameShape(cc.shape, sc.shape) || 2*cc.shape[1] > H || cc.shape[1] == 0 {
			return nil, fmt.Errorf("cos_cache %v and sin_cache %v for head size %d", cc.shape, sc.shape, H)
		}
		half = cc.shape[1]
		cos, sin = cc.Float32Data(), sc.Float32Data()
		maxPos := cc.shape[0]
		for b := range B {
			if last := pastOf[b] + S - 1; last >= maxPos {
				return nil, fmt.Errorf("position %d is past the %d rows of cos_cache", last, maxPos)
			}
		}
	}
	// Q rotated, in [B, S, N, H]; present k and v in [B, KV, Tp, H].
	qs := ec.s.pool.get(B * S * N * H)
	defer ec.s.pool.put(qs)
	presK, presV := ec.newZeroF32([]int{B, KV, Tp, H}), ec.newZeroF32([]int{B, KV, Tp, H})
	kd, vd := presK.Float32Data(), presV.Float32Data()
	qd := q.Float32Data()
	// Source row (b, s) of each new q/k/v head: packed or apart.
	qRow := func(b, s, n int) []float32 {
		if packed {
			o := (b*S+s)*(N+2*KV)*H + n*H
			return qd[o : o+H]
		}
		o := (b*S+s)*N*H + n*H
		return qd[o : o+H]
	}
	kvRow := func(val bool, b, s, h int) []float32 {
		if packed {
			o := (b*S+s)*(N+2*KV)*H + (N+h)*H
			if val {
				o += KV * H
			}
			return qd[o : o+H]
		}
		src := k
		if val {
			src = v
		}
		o := (b*S+s)*KV*H + h*H
		return src.Float32Data()[o : o+H]
	}
	rotate := func(dst, x []float32, pos int) {
		if !a.rotary {
			copy(dst, x)
			return
		}
		c, sn := cos[pos*half:(pos+1)*half], sin[pos*half:(pos+1)*half]
		if a.interlv {
			for i := range half {
				x1, x2 := x[2*i], x[2*i+1]
				dst[2*i] = x1*c[i] - x2*sn[i]
				dst[2*i+1] = x2*c[i] + x1*sn[i]
			}
		} else {
			for i := range half {
				x1, x2 := x[i], x[i+half]
				dst[i] = x1*c[i] - x2*sn[i]
				dst[i+half] = x2*c[i] + x1*sn[i]
			}
		}
		copy(dst[2*half:], x[2*half:])
	}
	for b := range B {
		pb := pastOf[b]
		for h := range KV {
			base := (b*KV + h) * Tp * H
			if pb > 0 {
				po := (b*KV + h) * P * H
				copy(kd[base:base+pb*H], pk.Float32Data()[po:po+pb*H])
				copy(vd[base:base+pb*H], pv.Float32Data()[po:po+pb*H])
			}
			for s := range S {
				o := base + (pb+s)*H
				rotate(kd[o:o+H], kvRow(false, b, s, h), pb+s)
				copy(vd[o:o+H], kvRow(true, b, s, h))
			}
		}
		for s := range S {
			for n := range N {
				o := ((b*S+s)*N + n) * H
				rotate(qs[o:o+H], qRow(b, s, n), pb+s)
			}
		}
	}
	scale := a.scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(H)))
	}
	out := ec.newF32([]int{B, S, N * H})
	od := out.Float32Data()
	group := N / KV
	threads, inner := ec.threads, 1
	if B*N < threads {
		threads, inner = 1, ec.threads
	}
	parallelFor(threads, B*N, S*Tp*H*2, func(lo, hi int) {
		sc := ec.s.pool.get(S * Tp)
		defer ec.s.pool.put(sc)
		for it := lo; it < hi; it++ {
			b, n := it/N, it%N
			tb, pb := totalOf[b], pastOf[b]
			kvo := (b*KV + n/group) * Tp * H
			kernels.Sgemm(inner, S, tb, H, scale, kernels.MatView{Data: qs, Off: (b*S*N + n) * H, RS: N * H, CS: 1},
				kernels.MatView{Data: kd, Off: kvo, RS: 1, CS: H}, 0, sc, tb)
			for s := range S {
				row := sc[s*tb : (s+1)*tb]
				end := min(pb+s+1, tb)
				start := 0
				if a.window > 0 && end > a.window {
					start = end - a.window
				}
				w := row[start:end]
				if a.softcap > 0 {
					for i, x := range w {
						w[i] = a.softcap * float32(math.Tanh(float64(x/a.softcap)))
					}
				}
				softmaxRow(w, w, false)
				clear(row[:start])
				clear(row[end:])
			}
			kernels.Sgemm(inner, S, H, tb, 1, kernels.MatView{Data: sc, RS: tb, CS: 1},
				kernels.MatView{Data: vd, Off: kvo, RS: H, CS: 1}, 0, od[(b*S*N+n)*H:], N*H)
		}
	})
	return []*Tensor{out, presK, presV}, nil
}
