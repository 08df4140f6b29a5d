//go:build amd64 && !purego

package runtime

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
	vecBinary = func(op binOp, dst, a, b []float32, sa, sb int) bool {
		n := len(dst)
		switch {
		case sa == 1 && sb == 1:
			switch op {
			case opAdd:
				addVV(&dst[0], &a[0], &b[0], n)
			case opSub:
				subVV(&dst[0], &a[0], &b[0], n)
			case opMul:
				mulVV(&dst[0], &a[0], &b[0], n)
			case opDiv:
				divVV(&dst[0], &a[0], &b[0], n)
			default:
				return false
			}
		case sa == 1:
			switch op {
			case opAdd:
				addVS(&dst[0], &a[0], b[0], n)
			case opSub:
				subVS(&dst[0], &a[0], b[0], n)
			case opMul:
				mulVS(&dst[0], &a[0], b[0], n)
			case opDiv:
				divVS(&dst[0], &a[0], b[0], n)
			default:
				return false
			}
		case sb == 1:
			switch op {
			case opAdd:
				addVS(&dst[0], &b[0], a[0], n)
			case opSub:
				subSV(&dst[0], a[0], &b[0], n)
			case opMul:
				mulVS(&dst[0], &b[0], a[0], n)
			case opDiv:
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
