package runtime

import (
	"errors"
	"fmt"
)

// com.microsoft RotaryEmbedding (input, position_ids, cos_cache, sin_cache),
// as onnxruntime's CPU kernel computes it (contrib_ops/cpu/bert/
// rotary_embedding.cc): input [B, S, N·H] (num_heads, or N from the caches'
// width) or [B, N, S, H]; position_ids [B, S], or one value: the first
// position, rows then at pos + s; cos_cache, sin_cache [maxPos, R/2] with R =
// rotary_embedding_dim (0: H). The first R dimensions of each head rotate as
// GroupQueryAttention's do (half-split, or pairs when interleaved); the rest
// pass through. The output has the input's shape.
func compileRotaryEmbedding(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("interleaved", "num_heads", "rotary_embedding_dim", "scale", "is_packed_batching"); err != nil {
		return nil, err
	}
	iv := map[string]int64{"interleaved": 0, "num_heads": 0, "rotary_embedding_dim": 0, "is_packed_batching": 0}
	for name, def := range iv {
		v, err := c.attrs.int(name, def)
		if err != nil {
			return nil, err
		}
		iv[name] = v
	}
	if sc, err := c.attrs.float("scale", 1); err != nil || sc != 1 {
		return nil, errors.New("scale other than 1 is not supported")
	}
	if iv["is_packed_batching"] != 0 {
		return nil, errors.New("is_packed_batching is not supported")
	}
	interleaved := iv["interleaved"] != 0
	heads, rdim := int(iv["num_heads"]), int(iv["rotary_embedding_dim"])
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x, pos, cc, scT := in[0], in[1], in[2], in[3]
		if x.dtype != Float32 || cc.dtype != Float32 || scT.dtype != Float32 {
			return nil, errors.New("RotaryEmbedding: want float32 input and caches")
		}
		if cc.Rank() != 2 || !sameShape(cc.shape, scT.shape) || cc.shape[1] == 0 {
			return nil, fmt.Errorf("RotaryEmbedding: caches of shapes %v and %v", cc.shape, scT.shape)
		}
		half, maxPos := cc.shape[1], cc.shape[0]
		var B, N, S, H int
		var sb, sn, ss int // strides of batch, head, sequence
		switch x.Rank() {
		case 4:
			B, N, S, H = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
			sb, sn, ss = N*S*H, S*H, H
		case 3:
			B, S = x.shape[0], x.shape[1]
			n := heads
			if n == 0 {
				hs := 2 * half
				if rdim != 0 {
					return nil, errors.New("RotaryEmbedding: 3-D input with rotary_embedding_dim needs num_heads")
				}
				if x.shape[2]%hs != 0 {
					return nil, fmt.Errorf("RotaryEmbedding: hidden %d is no multiple of head size %d", x.shape[2], hs)
				}
				n = x.shape[2] / hs
			}
			if n <= 0 || x.shape[2]%n != 0 {
				return nil, fmt.Errorf("RotaryEmbedding: hidden %d for %d heads", x.shape[2], n)
			}
			N, H = n, x.shape[2]/n
			sb, sn, ss = S*N*H, H, N*H
		default:
			return nil, fmt.Errorf("RotaryEmbedding: input of shape %v, want rank 3 or 4", x.shape)
		}
		r := rdim
		if r == 0 {
			r = H
		}
		if r != 2*half || r > H {
			return nil, fmt.Errorf("RotaryEmbedding: rotary dimension %d, caches of width %d, head size %d", r, half, H)
		}
		pv, err := pos.Int64s()
		if err != nil || pos.dtype == Bool {
			return nil, errors.New("RotaryEmbedding: position_ids must be int64")
		}
		if len(pv) != 1 && len(pv) != B*S {
			return nil, fmt.Errorf("RotaryEmbedding: position_ids of shape %v for [%d %d]", pos.shape, B, S)
		}
		at := func(b, s int) (int, error) {
			p := int(pv[0]) + s
			if len(pv) > 1 {
				p = int(pv[b*S+s])
			}
			if p < 0 || p >= maxPos {
				return 0, fmt.Errorf("RotaryEmbedding: position %d outside the %d cache rows", p, maxPos)
			}
			return p, nil
		}
		out := ec.newF32(append([]int{}, x.shape...))
		xd, od, cd, sd := x.Float32Data(), out.Float32Data(), cc.Float32Data(), scT.Float32Data()
		for b := range B {
			for s := range S {
				p, err := at(b, s)
				if err != nil {
					return nil, err
				}
				c, sn2 := cd[p*half:(p+1)*half], sd[p*half:(p+1)*half]
				for n := range N {
					o := b*sb + n*sn + s*ss
					src, dst := xd[o:o+H], od[o:o+H]
					for i := range half {
						a, z := i, i+half
						if interleaved {
							a, z = 2*i, 2*i+1
						}
						x1, x2 := src[a], src[z]
						dst[a] = x1*c[i] - x2*sn2[i]
						dst[z] = x2*c[i] + x1*sn2[i]
					}
					copy(dst[r:], src[r:])
				}
			}
		}
		return []*Tensor{out}, nil
	}, nil
}
