package tokenizer

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a text piece before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type normalizers []normalizer

func (ns normalizers) normalize(s string) string {
	for _, n := range ns {
		s = n.normalize(s)
	}
	return s
}

type unicodeForm struct{ f norm.Form }

func (u unicodeForm) normalize(s string) string { return u.f.String(s) }

type lowercase struct{}

func (lowercase) normalize(s string) string { return strings.ToLower(s) }

type strip struct{ left, right bool }

func (st strip) normalize(s string) string {
	if st.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if st.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// prepend adds its text in front of non-empty pieces (Llama's "▁").
type prepend struct{ text string }

func (p prepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return p.text + s
}

type replaceString struct{ old, new string }

func (r replaceString) normalize(s string) string { return strings.ReplaceAll(s, r.old, r.new) }

type replaceRegex struct {
	re  *regexp.Regexp
	new string
}

func (r replaceRegex) normalize(s string) string { return r.re.ReplaceAllLiteralString(s, r.new) }

// patternJSON is {"String": "..."} or {"Regex": "..."}.
type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	return parseComponent(raw, "normalizers", func(ns []normalizer) normalizer { return normalizers(ns) }, normalizerOf)
}

// normalizerOf parses a normalizer of type typ other than Sequence.
func normalizerOf(typ string, raw json.RawMessage) (normalizer, error) {
	switch typ {
	case "NFC":
		return unicodeForm{norm.NFC}, nil
	case "NFD":
		return unicodeForm{norm.NFD}, nil
	case "NFKC":
		return unicodeForm{norm.NFKC}, nil
	case "NFKD":
		return unicodeForm{norm.NFKD}, nil
	case "Lowercase":
		return lowercase{}, nil
	case "Strip":
		var s struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("Strip: %w", err)
		}
		return strip{left: s.Left, right: s.Right}, nil
	case "Prepend":
		var p struct {
			Prepend *string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("Prepend: %w", err)
		}
		if p.Prepend == nil {
			return nil, fmt.Errorf("Prepend: no \"prepend\" field")
		}
		return prepend{text: *p.Prepend}, nil
	case "Replace":
		var r struct {
			Pattern patternJSON `json:"pattern"`
			Content *string     `json:"content"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("Replace: %w", err)
		}
		if r.Content == nil {
			return nil, fmt.Errorf("Replace: no \"content\" field")
		}
		switch {
		case r.Pattern.String != nil:
			if *r.Pattern.String == "" {
				return nil, fmt.Errorf("Replace: empty pattern")
			}
			return replaceString{old: *r.Pattern.String, new: *r.Content}, nil
		case r.Pattern.Regex != nil:
			re, err := compilePattern(*r.Pattern.Regex)
			if err != nil {
				return nil, fmt.Errorf("Replace: %w", err)
			}
			if re.lookahead {
				return nil, fmt.Errorf("Replace: pattern %q: look-ahead is supported only in Split", *r.Pattern.Regex)
			}
			return replaceRegex{re: re.re, new: *r.Content}, nil
		}
		return nil, fmt.Errorf("Replace: pattern is neither String nor Regex")
	default:
		return nil, fmt.Errorf("normalizer type %q is not supported", typ)
	}
}
