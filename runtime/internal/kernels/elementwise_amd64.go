//go:build amd64 && !purego

package kernels

//go:noescape
func addVV(dst, a, b *float32, n int)

//go:noescape
func addVS(dst, a *float32, s float32, n int)

//go:noescape
func subVV(dst, a, b *float32, n int)

//go:noescape
func subVS(dst, a *float32, s float32, n int)

//go:noescape
func subSV(dst *float32, s float32, b *float32, n int)

//go:noescape
func mulVV(dst, a, b *float32, n int)

//go:noescape
func mulVS(dst, a *float32, s float32, n int)

//go:noescape
func divVV(dst, a, b *float32, n int)

//go:noescape
func divVS(dst, a *float32, s float32, n int)

//go:noescape
func divSV(dst *float32, s float32, b *float32, n int)

func init() {
	if !useAsm {
		return
	}
	Binary = func(op BinOp, dst, a, b []float32, sa, sb int) bool {
		n := len(dst)
		switch {
		case sa == 1 && sb == 1:
			switch op {
			case Add:
				addVV(&dst[0], &a[0], &b[0], n)
			case Sub:
				subVV(&dst[0], &a[0], &b[0], n)
			case Mul:
				mulVV(&dst[0], &a[0], &b[0], n)
			case Div:
				divVV(&dst[0], &a[0], &b[0], n)
			default:
				return false
			}
		case sa == 1:
			switch op {
			case Add:
				addVS(&dst[0], &a[0], b[0], n)
			case Sub:
				subVS(&dst[0], &a[0], b[0], n)
			case Mul:
				mulVS(&dst[0], &a[0], b[0], n)
			case Div:
				divVS(&dst[0], &a[0], b[0], n)
			default:
				return false
			}
		case sb == 1:
			switch op {
			case Add:
				addVS(&dst[0], &b[0], a[0], n)
			case Sub:
				subSV(&dst[0], a[0], &b[0], n)
			case Mul:
				mulVS(&dst[0], &b[0], a[0], n)
			case Div:
				divSV(&dst[0], a[0], &b[0], n)
			default:
				return false
			}
		default:
			return false
		}
		return true
	}
}
