package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// preTokenizer cuts a normalized text piece into words for the model. It
// appends the non-empty words to out.
type preTokenizer interface {
	split(p piece, out []piece) []piece
}

type preTokenizers []preTokenizer

func (ps preTokenizers) split(p piece, out []piece) []piece {
	cur := []piece{p}
	for _, pt := range ps {
		var next []piece
		for _, q := range cur {
			next = pt.split(q, next)
		}
		cur = next
	}
	return append(out, cur...)
}

// gpt2Pattern is the split pattern of GPT-2's byte-level pre-tokenizer.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// byteLevel is GPT-2's pre-tokenizer: optionally a space in front, the GPT-2
// split pattern, then each byte mapped to a printable character.
type byteLevel struct {
	addPrefixSpace bool
	re             *pattern // nil when use_regex is false
}

func (bl byteLevel) split(p piece, out []piece) []piece {
	if p.s == "" {
		return out
	}
	if bl.addPrefixSpace && !strings.HasPrefix(p.s, " ") {
		p.s = " " + p.s
	}
	if bl.re == nil {
		p.s = byteChars(p.s)
		return append(out, p)
	}
	n := len(out)
	out = splitBy(p, bl.re.matches(p.s), isolated, false, out)
	for i := n; i < len(out); i++ {
		out[i].s = byteChars(out[i].s)
	}
	return out
}

// byteToRune is GPT-2's reversible map from bytes to printable characters:
// printable Latin-1 bytes stand for themselves, the other 68 bytes (controls,
// space, 0x7F-0xA0, 0xAD) for U+0100 onwards in byte order.
var byteToRune = func() [256]rune {
	var t [256]rune
	next := rune(256)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			t[b] = rune(b)
		} else {
			t[b] = next
			next++
		}
	}
	return t
}()

// byteChars maps every byte of s to its GPT-2 character.
func byteChars(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteRune(byteToRune[s[i]])
	}
	return b.String()
}

// metaspace is SentencePiece's convention: spaces become "▁", a "▁" is put in
// front (always, or only for the text's first piece), and, when split is on,
// every "▁" starts a new word.
type metaspace struct {
	replacement string
	prepend     string // "always", "first" or "never"
	splits      bool
}

func (m metaspace) split(p piece, out []piece) []piece {
	if p.s == "" {
		return out
	}
	p.s = strings.ReplaceAll(p.s, " ", m.replacement)
	if (m.prepend == "always" || (m.prepend == "first" && p.first)) && !strings.HasPrefix(p.s, m.replacement) {
		p.s = m.replacement + p.s
	}
	if !m.splits {
		return append(out, p)
	}
	return splitBy(p, literalMatches(p.s, m.replacement), mergedWithNext, false, out)
}

// behavior says what a split does with the matched delimiters.
type behavior int

const (
	removed            behavior = iota // dropped
	isolated                           // words of their own
	mergedWithPrevious                 // appended to the word before
	mergedWithNext                     // prepended to the word after
	contiguous                         // runs of delimiters form one word
)

var behaviors = map[string]behavior{
	"Removed":            removed,
	"Isolated":           isolated,
	"MergedWithPrevious": mergedWithPrevious,
	"MergedWithNext":     mergedWithNext,
	"Contiguous":         contiguous,
}

// splitter is the Split pre-tokenizer and the fixed splits built on it.
type splitter struct {
	re       *pattern // nil: literal
	literal  string
	runeFunc func(rune) bool // when set: single characters for which it is true match
	behavior behavior
	invert   bool
}

func (sp splitter) split(p piece, out []piece) []piece {
	if p.s == "" {
		return out
	}
	var ms [][2]int
	switch {
	case sp.runeFunc != nil:
		for i, r := range p.s {
			if sp.runeFunc(r) {
				ms = append(ms, [2]int{i, i + utf8.RuneLen(r)})
			}
		}
	case sp.re != nil:
		ms = sp.re.matches(p.s)
	default:
		ms = literalMatches(p.s, sp.literal)
	}
	return splitBy(p, ms, sp.behavior, sp.invert, out)
}

func literalMatches(s, lit string) [][2]int {
	var ms [][2]int
	for off := 0; ; {
		i := strings.Index(s[off:], lit)
		if i < 0 {
			return ms
		}
		ms = append(ms, [2]int{off + i, off + i + len(lit)})
		off += i + len(lit)
	}
}

// segment is a run of the text, a delimiter match or the text between two.
type segment struct {
	start, end int
	match      bool
}

// splitBy cuts p at the matches ms (sorted, not overlapping) as behaviour b
// says (with matches and non-matches swapped when invert is set) and appends
// the non-empty words to out.
func splitBy(p piece, ms [][2]int, b behavior, invert bool, out []piece) []piece {
	var segs []segment
	last := 0
	for _, m := range ms {
		if m[0] > last {
			segs = append(segs, segment{last, m[0], invert})
		}
		segs = append(segs, segment{m[0], m[1], !invert})
		last = m[1]
	}
	if last < len(p.s) {
		segs = append(segs, segment{last, len(p.s), invert})
	}
	var words []segment
	switch b {
	case removed:
		for _, s := range segs {
			if !s.match {
				words = append(words, s)
			}
		}
	case isolated:
		words = segs
	case mergedWithPrevious:
		prevMatch := false
		for _, s := range segs {
			if s.match && !prevMatch && len(words) > 0 {
				words[len(words)-1].end = s.end
			} else {
				words = append(words, s)
			}
			prevMatch = s.match
		}
	case mergedWithNext:
		nextMatch := false
		for i := len(segs) - 1; i >= 0; i-- {
			s := segs[i]
			if s.match && !nextMatch && len(words) > 0 {
				words[len(words)-1].start = s.start
			} else {
				words = append(words, s)
			}
			nextMatch = s.match
		}
		for i, j := 0, len(words)-1; i < j; i, j = i+1, j-1 {
			words[i], words[j] = words[j], words[i]
		}
	case contiguous:
		for i, s := range segs {
			if i > 0 && s.match == segs[i-1].match {
				words[len(words)-1].end = s.end
			} else {
				words = append(words, s)
			}
		}
	}
	for _, w := range words {
		if w.end > w.start {
			out = append(out, piece{s: p.s[w.start:w.end], first: p.first && w.start == 0, id: -1})
		}
	}
	return out
}

func parsePreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	return parseComponent(raw, "pretokenizers", func(ps []preTokenizer) preTokenizer { return preTokenizers(ps) }, preTokenizerOf)
}

// preTokenizerOf parses a pre-tokenizer of type typ other than Sequence.
func preTokenizerOf(typ string, raw json.RawMessage) (_ preTokenizer, err error) {
	switch typ {
	case "ByteLevel":
		var s struct {
			AddPrefixSpace *bool `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("ByteLevel: %w", err)
		}
		bl := byteLevel{addPrefixSpace: s.AddPrefixSpace == nil || *s.AddPrefixSpace}
		if s.UseRegex == nil || *s.UseRegex {
			if bl.re, err = compilePattern(gpt2Pattern); err != nil {
				return nil, fmt.Errorf("ByteLevel: %w", err)
			}
		}
		return bl, nil
	case "Metaspace":
		var s struct {
			Replacement    *string `json:"replacement"`
			PrependScheme  *string `json:"prepend_scheme"`
			AddPrefixSpace *bool   `json:"add_prefix_space"`
			Split          *bool   `json:"split"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("Metaspace: %w", err)
		}
		m := metaspace{replacement: "▁", prepend: "always", splits: s.Split == nil || *s.Split}
		if s.Replacement != nil {
			if utf8.RuneCountInString(*s.Replacement) != 1 {
				return nil, fmt.Errorf("Metaspace: replacement %q is not one character", *s.Replacement)
			}
			m.replacement = *s.Replacement
		}
		switch {
		case s.PrependScheme != nil:
			switch *s.PrependScheme {
			case "always", "first", "never":
				m.prepend = *s.PrependScheme
			default:
				return nil, fmt.Errorf("Metaspace: prepend_scheme %q is not always, first or never", *s.PrependScheme)
			}
		case s.AddPrefixSpace != nil && !*s.AddPrefixSpace:
			m.prepend = "never"
		}
		return m, nil
	case "Split":
		var s struct {
			Pattern  patternJSON `json:"pattern"`
			Behavior string      `json:"behavior"`
			Invert   bool        `json:"invert"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("Split: %w", err)
		}
		b, ok := behaviors[s.Behavior]
		if !ok {
			return nil, fmt.Errorf("Split: behavior %q is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous", s.Behavior)
		}
		sp := splitter{behavior: b, invert: s.Invert}
		switch {
		case s.Pattern.String != nil:
			if *s.Pattern.String == "" {
				return nil, fmt.Errorf("Split: empty pattern")
			}
			sp.literal = *s.Pattern.String
		case s.Pattern.Regex != nil:
			if sp.re, err = compilePattern(*s.Pattern.Regex); err != nil {
				return nil, fmt.Errorf("Split: %w", err)
			}
		default:
			return nil, fmt.Errorf("Split: pattern is neither String nor Regex")
		}
		return sp, nil
	case "Whitespace":
		re, err := compilePattern(`\w+|[^\w\s]+`)
		if err != nil {
			return nil, fmt.Errorf("Whitespace: %w", err)
		}
		return splitter{re: re, behavior: removed, invert: true}, nil
	case "WhitespaceSplit":
		return splitter{runeFunc: unicode.IsSpace, behavior: removed}, nil
	case "Digits":
		var s struct {
			Individual bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("Digits: %w", err)
		}
		sp := splitter{runeFunc: unicode.IsNumber, behavior: contiguous}
		if s.Individual {
			sp.behavior = isolated
		}
		return sp, nil
	default:
		return nil, fmt.Errorf("pre_tokenizer type %q is not supported", typ)
	}
}
