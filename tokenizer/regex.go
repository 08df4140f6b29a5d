package tokenizer

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pattern is a regular expression from a tokenizer.json file. The Hugging Face
// library compiles them with Oniguruma; compilePattern translates them to Go's
// RE2 syntax:
//
//   - \s, \d, \w and their negations get Unicode meanings, as in Oniguruma
//     (Go's are ASCII-only): \s is White_Space, \d is \p{Nd}, \w is
//     [\p{L}\p{M}\p{Nd}\p{Pc}].
//   - RE2 has no look-around. The one that tokenizers use, the alternative
//     \s+(?!\S) of the GPT-2 pattern and its descendants (Llama 3, Qwen), is
//     emulated: it becomes (\s+)(?:\s|\z), and a match of that alternative
//     ends where the group ends. A backtracking engine matches \s+(?!\S) on a
//     run of white space followed by a non-space by giving back the last space
//     character, which is exactly what the greedy group followed by one more
//     space does. Any other look-around is refused.
//
// Go's regexp picks, among the leftmost matches, the one a backtracking engine
// would pick, so the translated pattern splits text as Oniguruma does.
type pattern struct {
	re        *regexp.Regexp
	lookahead bool  // the pattern contains an emulated \s+(?!\S)
	ends      []int // submatch indices of the emulated alternatives' groups
}

const (
	spaceSet = `\t\n\v\f\r\x{85}\p{Z}` // White_Space, as a class body
	wordSet  = `\p{L}\p{M}\p{Nd}\p{Pc}`
	// lookaheadAlt is the one look-ahead construct compilePattern accepts.
	lookaheadAlt = `\s+(?!\S)`
)

func compilePattern(src string) (*pattern, error) {
	var b strings.Builder
	p := &pattern{}
	inClass := false
	groups := 0
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case !inClass && strings.HasPrefix(src[i:], lookaheadAlt):
			before := src[:i]
			after := src[i+len(lookaheadAlt):]
			if !(before == "" || strings.HasSuffix(before, "|") || strings.HasSuffix(before, "(") || strings.HasSuffix(before, "(?:")) ||
				!(after == "" || after[0] == '|' || after[0] == ')') {
				return nil, fmt.Errorf("pattern %q: \\s+(?!\\S) is supported only as a whole alternative", src)
			}
			fmt.Fprintf(&b, `(?P<la%d>[%s]+)(?:[%s]|\z)`, groups, spaceSet, spaceSet)
			p.lookahead = true
			groups++
			i += len(lookaheadAlt)
		case !inClass && c == '(':
			rest := src[i:]
			for _, la := range []string{"(?=", "(?!", "(?<=", "(?<!", "(?>"} {
				if strings.HasPrefix(rest, la) {
					return nil, fmt.Errorf("pattern %q: %s...) is not supported (Go's regexp has no look-around or atomic groups)", src, la)
				}
			}
			if !strings.HasPrefix(rest, "(?") || strings.HasPrefix(rest, "(?P<") || strings.HasPrefix(rest, "(?<") {
				groups++
			}
			b.WriteByte(c)
			i++
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			i++
			// A ']' right after '[' or '[^' is a literal.
			if i < len(src) && src[i] == '^' {
				b.WriteByte('^')
				i++
			}
			if i < len(src) && src[i] == ']' {
				b.WriteString(`\]`)
				i++
			}
		case c == '[' && inClass && strings.HasPrefix(src[i:], "[:"):
			end := strings.Index(src[i:], ":]")
			if end < 0 {
				return nil, fmt.Errorf("pattern %q: unterminated [: class", src)
			}
			b.WriteString(src[i : i+end+2])
			i += end + 2
		case c == '[' && inClass:
			return nil, fmt.Errorf("pattern %q: nested character classes are not supported", src)
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
			i++
		case c == '\\':
			if i+1 >= len(src) {
				return nil, fmt.Errorf("pattern %q: trailing backslash", src)
			}
			n, err := escape(&b, src, i, inClass)
			if err != nil {
				return nil, err
			}
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", src, err)
	}
	p.re = re
	for k := 0; k < groups; k++ {
		if idx := re.SubexpIndex("la" + strconv.Itoa(k)); idx > 0 {
			p.ends = append(p.ends, idx)
		}
	}
	return p, nil
}

// escape translates the escape sequence at src[i] and returns its length.
func escape(b *strings.Builder, src string, i int, inClass bool) (int, error) {
	c := src[i+1]
	set := func(body string, negate bool) (int, error) {
		switch {
		case !inClass && negate:
			fmt.Fprintf(b, "[^%s]", body)
		case !inClass:
			fmt.Fprintf(b, "[%s]", body)
		case negate:
			return 0, fmt.Errorf("pattern %q: \\%c inside a character class is not supported", src, c)
		default:
			b.WriteString(body)
		}
		return 2, nil
	}
	switch c {
	case 's':
		return set(spaceSet, false)
	case 'S':
		return set(spaceSet, true)
	case 'w':
		return set(wordSet, false)
	case 'W':
		return set(wordSet, true)
	case 'd':
		b.WriteString(`\p{Nd}`)
		return 2, nil
	case 'D':
		b.WriteString(`\P{Nd}`)
		return 2, nil
	case 'p', 'P', 'x':
		// \p{Name}, \pL, \x{263a}, \x41: copied as they are.
		if i+2 < len(src) && src[i+2] == '{' {
			end := strings.IndexByte(src[i:], '}')
			if end < 0 {
				return 0, fmt.Errorf("pattern %q: unterminated \\%c{", src, c)
			}
			b.WriteString(src[i : i+end+1])
			return end + 1, nil
		}
		n := 3
		if c == 'x' {
			n = 4
		}
		n = min(n, len(src)-i)
		b.WriteString(src[i : i+n])
		return n, nil
	default:
		b.WriteString(src[i : i+2])
		return 2, nil
	}
}

// matches returns the [start, end) byte ranges of the non-empty matches of
// the pattern in s, left to right, without overlaps.
func (p *pattern) matches(s string) [][2]int {
	if !p.lookahead {
		locs := p.re.FindAllStringIndex(s, -1)
		out := make([][2]int, 0, len(locs))
		for _, l := range locs {
			if l[1] > l[0] {
				out = append(out, [2]int{l[0], l[1]})
			}
		}
		return out
	}
	var out [][2]int
	for pos := 0; pos < len(s); {
		loc := p.re.FindStringSubmatchIndex(s[pos:])
		if loc == nil {
			break
		}
		start, end := loc[0], loc[1]
		for _, g := range p.ends {
			if loc[2*g] >= 0 {
				end = loc[2*g+1]
				break
			}
		}
		if end == start {
			_, size := utf8.DecodeRuneInString(s[pos+start:])
			pos += start + max(size, 1)
			continue
		}
		out = append(out, [2]int{pos + start, pos + end})
		pos += end
	}
	return out
}
