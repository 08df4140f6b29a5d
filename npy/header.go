package npy

import (
	"fmt"
	"strconv"
	"strings"
)

// header is the parsed dictionary of a .npy header.
type header struct {
	descr   string
	fortran bool
	shape   []int
}

// parseHeader parses the Python dict literal of a .npy header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
// It accepts what numpy.lib.format writes (any quoting, spacing and trailing
// commas) and nothing more: the three keys, each exactly once.
func parseHeader(s string) (*header, error) {
	p := &lit{s: s}
	p.space()
	if !p.eat('{') {
		return nil, p.errorf("want '{'")
	}
	h := &header{}
	seen := map[string]bool{}
	for {
		p.space()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat(':') {
			return nil, p.errorf("want ':' after key %q", key)
		}
		p.space()
		if seen[key] {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		switch key {
		case "descr":
			if p.peek() == '[' || p.peek() == '(' || p.peek() == '{' {
				return nil, fmt.Errorf("structured dtypes are not supported (descr is a %c...)", p.peek())
			}
			if h.descr, err = p.str(); err != nil {
				return nil, err
			}
		case "fortran_order":
			if h.fortran, err = p.boolean(); err != nil {
				return nil, err
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unexpected key %q", key)
		}
		more, err := p.more('}', "want ',' or '}'")
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	p.space()
	if p.i != len(p.s) {
		return nil, p.errorf("unexpected text after '}'")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return nil, fmt.Errorf("key %q missing", k)
		}
	}
	return h, nil
}

// lit scans a Python literal.
type lit struct {
	s string
	i int
}

func (p *lit) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *lit) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *lit) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *lit) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// more scans what follows an item of a dict or tuple closed by end: a ','
// (true: another item or end may follow) or end itself (false); anything else
// is an error saying want.
func (p *lit) more(end byte, want string) (bool, error) {
	p.space()
	if p.eat(',') {
		return true, nil
	}
	p.space()
	if !p.eat(end) {
		return false, p.errorf("%s", want)
	}
	return false, nil
}

// str scans a quoted string without escapes (none occur in a .npy header
// this package can read).
func (p *lit) str() (string, error) {
	q := p.peek()
	if q != '\'' && q != '"' {
		return "", p.errorf("want a quoted string")
	}
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", p.errorf("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.IndexByte(v, '\\') >= 0 {
		return "", p.errorf("escape sequences are not supported")
	}
	p.i += end + 2
	return v, nil
}

func (p *lit) boolean() (bool, error) {
	switch {
	case strings.HasPrefix(p.s[p.i:], "True"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "False"):
		p.i += 5
		return false, nil
	}
	return false, p.errorf("want True or False")
}

// maxDims is NumPy's limit on the number of dimensions (NPY_MAXDIMS in NumPy 2).
const maxDims = 64

// tuple scans a tuple of non-negative integers: (), (3,), (2, 3).
func (p *lit) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, p.errorf("want '(' to start the shape")
	}
	shape := []int{}
	for {
		p.space()
		if p.eat(')') {
			return shape, nil
		}
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if start == p.i {
			return nil, p.errorf("want a non-negative integer in the shape")
		}
		d, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
		if err != nil || d > maxElements {
			return nil, fmt.Errorf("dimension %s is too large", p.s[start:p.i])
		}
		p.eat('L') // Python 2 long
		if len(shape) == maxDims {
			return nil, fmt.Errorf("shape has more than %d dimensions", maxDims)
		}
		shape = append(shape, int(d))
		more, err := p.more(')', "want ',' or ')' in the shape")
		if err != nil {
			return nil, err
		}
		if more {
			continue
		}
		if len(shape) == 1 {
			// (3) is the integer 3 in Python, not a tuple; numpy never writes it.
			return nil, fmt.Errorf("shape (%d) is not a tuple (want (%d,))", shape[0], shape[0])
		}
		return shape, nil
	}
}

// canonicalDType maps a header descr to one of the supported dtypes.
func canonicalDType(descr string) (string, error) {
	if len(descr) < 2 {
		return "", fmt.Errorf("unsupported dtype %q", descr)
	}
	order, kind := descr[0], descr[1:]
	switch kind {
	case "u1", "b1":
		// One-byte types have no byte order; accept any marker.
		if strings.IndexByte("|<>=", order) < 0 {
			break
		}
		return string('|') + kind, nil
	case "f4", "f8", "i8", "i4":
		switch order {
		case '<':
			return descr, nil
		case '>':
			return "", fmt.Errorf("big-endian dtype %q is not supported (save a little-endian array: a.astype('<%s'))", descr, kind)
		}
	}
	return "", fmt.Errorf("unsupported dtype %q (supported: <f4, <f8, <i8, <i4, |u1, |b1)", descr)
}

// formatHeader returns the dict literal numpy.lib.format writes for a.
func formatHeader(dtype string, shape []int) string {
	var b strings.Builder
	b.WriteString("{'descr': '")
	b.WriteString(dtype)
	b.WriteString("', 'fortran_order': False, 'shape': (")
	for i, d := range shape {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		b.WriteByte(',')
	}
	b.WriteString("), }")
	return b.String()
}
