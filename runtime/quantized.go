package runtime

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

// Quantized ops. Weights stay in their stored integer bytes: MatMulNBits and
// MatMulInteger hand them to the matrix multiply as a kernels.BSource that
// widens one packed panel at a time (kernels.Blocks, kernels.Int8B), never
// as a float32 copy of the matrix.

// compileMatMulNBits is com.microsoft MatMulNBits (A, B, scales, zero_points,
// g_idx, bias): Y = A · dequantize(B), B of attributes K × N in blocks of
// block_size along K, 4 or 8 bits, uint8 zero points (or none). Every
// accuracy_level is computed as level 0 (dequantize to float32, then a
// float32 multiply): onnxruntime's level 4 also quantizes A to int8, which
// this runtime does not imitate (its results are within ~1e-2 relative of
// level 0's).
func compileMatMulNBits(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("K", "N", "bits", "block_size", "accuracy_level"); err != nil {
		return nil, err
	}
	var p [4]int64
	for i, name := range []string{"K", "N", "bits", "block_size"} {
		v, err := c.attrs.int(name, 0)
		if err != nil {
			return nil, err
		}
		if !c.attrs.has(name) {
			return nil, fmt.Errorf("attribute %s is required", name)
		}
		p[i] = v
	}
	if _, err := c.attrs.int("accuracy_level", 0); err != nil {
		return nil, err
	}
	K, N, bits, block := int(p[0]), int(p[1]), int(p[2]), int(p[3])
	if bits != 4 && bits != 8 {
		return nil, fmt.Errorf("bits %d: only 4 and 8 are supported", bits)
	}
	if len(c.n.in) > 4 && c.n.in[4] >= 0 {
		return nil, errors.New("input g_idx is not supported")
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		a, bq, sc := in[0], in[1], in[2]
		zp, bias := gqaIn(in, 3), gqaIn(in, 5)
		if a.dtype != Float32 || sc.dtype != Float32 || bias != nil && bias.dtype != Float32 {
			return nil, fmt.Errorf("MatMulNBits: A %v, scales %v: want float32", a.dtype, sc.dtype)
		}
		if bq.dtype != Uint8 || zp != nil && zp.dtype != Uint8 {
			return nil, errors.New("MatMulNBits: B and zero_points must be uint8")
		}
		if a.Rank() == 0 || a.shape[a.Rank()-1] != K {
			return nil, fmt.Errorf("MatMulNBits: A of shape %v, want last dimension K = %d", a.shape, K)
		}
		var zd []byte
		if zp != nil {
			zd = zp.data.([]uint8)
		}
		src, err := kernels.NewBlocks(bq.data.([]uint8), sc.Float32Data(), zd, bits, K, N, block)
		if err != nil {
			return nil, fmt.Errorf("MatMulNBits: %w", err)
		}
		shape := append(append([]int{}, a.shape[:a.Rank()-1]...), N)
		out := ec.newF32(shape)
		m := a.Len() / K
		od := out.Float32Data()
		kernels.SgemmB(ec.threads, m, N, K, 1, kernels.MatView{Data: a.Float32Data(), RS: K, CS: 1}, src, 0, od, N)
		if bias != nil {
			if bias.Len() != N {
				return nil, fmt.Errorf("MatMulNBits: bias of shape %v, want %d values", bias.shape, N)
			}
			bd := bias.Float32Data()
			for r := range m {
				f32Row(opAdd, od[r*N:(r+1)*N], od[r*N:(r+1)*N], bd, 1, 1)
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// compileDynamicQuantizeLinear is DynamicQuantizeLinear (x): uint8 y with
// one scale and zero point for the whole tensor, as onnxruntime computes
// them in float32: lo = min(x, 0), hi = max(x, 0), scale = (hi − lo)/255 (1
// when hi = lo), zp = round(clamp(0 − lo/scale, 0, 255)), y = clamp(round(x /
// scale) + zp, 0, 255), rounding half to even.
func compileDynamicQuantizeLinear(c *compileCtx) (kernel, error) {
	if err := c.attrs.only(); err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if x.dtype != Float32 {
			return nil, errType("DynamicQuantizeLinear", x.dtype)
		}
		xd := x.Float32Data()
		var lo, hi float32
		for _, v := range xd {
			lo, hi = min(lo, v), max(hi, v)
		}
		scale := float32(1)
		if hi != lo {
			scale = (hi - lo) / 255
		}
		zp := float32(math.RoundToEven(float64(min(max(0-lo/scale, 0), 255))))
		y := newTensor(Uint8, append([]int{}, x.shape...))
		yd := y.data.([]uint8)
		parallelElems(ec.threads, len(xd), 4, func(a, b int) {
			for i := a; i < b; i++ {
				q := math.RoundToEven(float64(xd[i]/scale)) + float64(zp)
				yd[i] = uint8(min(max(q, 0), 255))
			}
		})
		return []*Tensor{y, ScalarFloat32(scale), {dtype: Uint8, shape: []int{}, data: []uint8{uint8(zp)}}}, nil
	}, nil
}

// zeroPoints reads an 8-bit zero point input (nil: 0) of one or n values.
func zeroPoints(t *Tensor, what string, n int) ([]int32, error) {
	if t == nil {
		return []int32{0}, nil
	}
	v, err := t.Int64s()
	if err != nil || t.dtype != Int8 && t.dtype != Uint8 {
		return nil, fmt.Errorf("%s: want int8 or uint8, got %v", what, t.dtype)
	}
	if len(v) != 1 && len(v) != n {
		return nil, fmt.Errorf("%s of shape %v: want a scalar or %d values", what, t.shape, n)
	}
	z := make([]int32, len(v))
	for i, x := range v {
		z[i] = int32(x)
	}
	return z, nil
}

// compileMatMulInteger is MatMulInteger (A, B, a_zero_point, b_zero_point):
// int32 Y = (A − a_zp)·(B − b_zp) for 8-bit A [..., M, K] and a 2-D 8-bit B
// [K, N], with a scalar a_zp and a scalar or per-column b_zp. The integer
// products are exact: the float32 multiply runs over K chunks of
// kernels.ExactIntK, in which every partial sum is an integer below 2^24,
// and the chunks are added in int32. B is read through kernels.Int8B.
func compileMatMulInteger(c *compileCtx) (kernel, error) {
	if err := c.attrs.only(); err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		a, b := in[0], in[1]
		if a.dtype != Int8 && a.dtype != Uint8 || b.dtype != Int8 && b.dtype != Uint8 {
			return nil, fmt.Errorf("MatMulInteger of %v and %v: want 8-bit integers", a.dtype, b.dtype)
		}
		if a.Rank() < 1 || b.Rank() != 2 || a.shape[a.Rank()-1] != b.shape[0] {
			return nil, fmt.Errorf("MatMulInteger of shapes %v and %v: want [..., K] and [K, N]", a.shape, b.shape)
		}
		K, N := b.shape[0], b.shape[1]
		az, err := zeroPoints(gqaIn(in, 2), "a_zero_point", 1)
		if err != nil {
			return nil, err
		}
		bz, err := zeroPoints(gqaIn(in, 3), "b_zero_point", N)
		if err != nil {
			return nil, err
		}
		shape := append(append([]int{}, a.shape[:a.Rank()-1]...), N)
		if a.Rank() == 1 {
			shape = []int{N}
		}
		out := newTensor(Int32, shape)
		od := out.Int32Data()
		m := a.Len() / max(K, 1)
		if m == 0 || N == 0 || K == 0 {
			return []*Tensor{out}, nil
		}
		av := ec.s.pool.get(m * K)
		defer ec.s.pool.put(av)
		switch d := a.data.(type) {
		case []int8:
			for i, x := range d {
				av[i] = float32(int32(x) - az[0])
			}
		case []uint8:
			for i, x := range d {
				av[i] = float32(int32(x) - az[0])
			}
		}
		tmp := ec.s.pool.get(m * N)
		defer ec.s.pool.put(tmp)
		for p := 0; p < K; p += kernels.ExactIntK {
			kc := min(kernels.ExactIntK, K-p)
			A := kernels.MatView{Data: av, Off: p, RS: K, CS: 1}
			switch d := b.data.(type) {
			case []int8:
				kernels.SgemmB(ec.threads, m, N, kc, 1, A, kernels.Int8B[int8]{Data: d, Off: p * N, RS: N, ZP: bz}, 0, tmp, N)
			case []uint8:
				kernels.SgemmB(ec.threads, m, N, kc, 1, A, kernels.Int8B[uint8]{Data: d, Off: p * N, RS: N, ZP: bz}, 0, tmp, N)
			}
			for i, v := range tmp {
				od[i] += int32(v)
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// compileDequantizeLinear is DequantizeLinear (x, x_scale, x_zero_point):
// float32 y = float32(x − zp)·scale, per tensor or per slice along axis, for
// int8, uint8 and int32 x (blocked quantization, opset 21's block_size, is
// refused).
func compileDequantizeLinear(c *compileCtx) (kernel, error) {
	r := c.read("axis", "block_size")
	axis := r.int("axis", 1)
	if r.err != nil {
		return nil, r.err
	}
	if bs, err := c.attrs.int("block_size", 0); err != nil || bs != 0 {
		return nil, errors.New("block_size (blocked quantization) is not supported")
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x, sc, zt := in[0], in[1], gqaIn(in, 2)
		if sc.dtype != Float32 {
			return nil, errType("DequantizeLinear scale", sc.dtype)
		}
		xv, err := x.Int64s()
		if err != nil || x.dtype == Bool || x.dtype == Int64 {
			return nil, fmt.Errorf("DequantizeLinear of %v: want int8, uint8 or int32", x.dtype)
		}
		n := sc.Len()
		outer, inner := 1, x.Len()
		if n > 1 {
			ax, err := normAxis(axis, x.Rank())
			if err != nil {
				return nil, err
			}
			if x.shape[ax] != n {
				return nil, fmt.Errorf("DequantizeLinear: %d scales for axis %d of shape %v", n, ax, x.shape)
			}
			outer, inner = numel(x.shape[:ax]), numel(x.shape[ax+1:])
		}
		zp := make([]int64, n)
		if zt != nil {
			if zt.dtype != x.dtype || zt.Len() != n {
				return nil, fmt.Errorf("DequantizeLinear: zero point %v%v for %d scales of %v data", zt.dtype, zt.shape, n, x.dtype)
			}
			if zp, err = zt.Int64s(); err != nil {
				return nil, err
			}
		}
		sd := sc.Float32Data()
		out := ec.newF32(append([]int{}, x.shape...))
		od := out.Float32Data()
		for o := range outer {
			for c := range n {
				base := (o*n + c) * inner
				for i := base; i < base+inner; i++ {
					od[i] = float32(int32(xv[i]-zp[c])) * sd[c]
				}
			}
		}
		return []*Tensor{out}, nil
	}, nil
}
