//go:build amd64 && !purego

package kernels

//go:noescape
func expAVX2(dst, src *float32, n int) bool

//go:noescape
func expShiftSumAVX2(dst, src *float32, n int, m float32) float32

//go:noescape
func sigmoidAVX2(dst, src *float32, n int) bool

//go:noescape
func tanhAVX2(dst, src *float32, n int) bool

//go:noescape
func maxAVX2(x *float32, n int) (m float32, nan bool)

func init() {
	if !useAsm {
		return
	}
	vecExp = func(d, s []float32) bool { return expAVX2(&d[0], &s[0], len(s)) }
	vecSigmoid = func(d, s []float32) bool { return sigmoidAVX2(&d[0], &s[0], len(s)) }
	vecTanh = func(d, s []float32) bool { return tanhAVX2(&d[0], &s[0], len(s)) }
	vecExpShiftSum = func(d, s []float32, m float32) float32 { return expShiftSumAVX2(&d[0], &s[0], len(s), m) }
	vecMax = func(x []float32) (float32, bool) { return maxAVX2(&x[0], len(x)) }
}

//go:noescape
func scaleMaskMaxAVX2(x, mask *float32, c float32, n int, div bool) (m float32, nan bool)

func init() {
	if useAsm {
		ScaleMaskMax = func(x, mask []float32, c float32, div bool) (float32, bool) {
			_ = mask[len(x)-1]
			return scaleMaskMaxAVX2(&x[0], &mask[0], c, len(x), div)
		}
		MulScalar = func(x []float32, c float32) { mulVS(&x[0], &x[0], c, len(x)) }
		MulScalarTo = func(o, x []float32, c float32) {
			_ = x[len(o)-1]
			mulVS(&o[0], &x[0], c, len(o))
		}
	}
}
