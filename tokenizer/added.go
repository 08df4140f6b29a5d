package tokenizer

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

type addedTokenJSON struct {
	ID         *int64  `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

// addedToken is a token matched in the text before the model sees it.
type addedToken struct {
	content    string // as matched: normalized when the token is normalized
	id         int32
	singleWord bool
	lstrip     bool
	rstrip     bool
}

// addedVocab finds added tokens in text: leftmost match first and, among
// matches at the same place, the longest.
type addedVocab struct {
	tokens  []addedToken
	byFirst [256][]int // indices into tokens, by the content's first byte
}

// parseAddedTokens splits the added tokens into those matched on the raw text
// (normalized false, the default for special tokens) and those matched on the
// normalized text (their content normalized as the text is).
//
// Ids are given as the Hugging Face library gives them when it loads a file,
// which may differ from the file's "id" fields (the library then only logs a
// warning): a token in the model's vocabulary keeps its vocabulary id; any
// other gets one more than the largest id given so far, at least the size of
// the vocabulary.
func parseAddedTokens(list []addedTokenJSON, norm normalizer, model *bpe) (raw, normed *addedVocab, err error) {
	raw, normed = &addedVocab{}, &addedVocab{}
	given := map[string]int32{}
	maxGiven := int32(-1)
	for i, a := range list {
		if a.ID == nil || a.Content == nil {
			return nil, nil, fmt.Errorf("[%d]: missing \"id\" or \"content\"", i)
		}
		if *a.ID < 0 || *a.ID > 1<<31-1 {
			return nil, nil, fmt.Errorf("[%d] %q: id %d out of range", i, *a.Content, *a.ID)
		}
		if *a.Content == "" {
			return nil, nil, fmt.Errorf("[%d]: empty content", i)
		}
		id, seen := given[*a.Content]
		if !seen {
			if vid, ok := model.vocab[*a.Content]; ok {
				id = vid
			} else if maxGiven < 0 {
				id = int32(len(model.vocab))
			} else {
				id = max(maxGiven, int32(len(model.vocab))-1) + 1
			}
			given[*a.Content] = id
			maxGiven = max(maxGiven, id)
		}
		tok := addedToken{content: *a.Content, id: id, singleWord: a.SingleWord, lstrip: a.LStrip, rstrip: a.RStrip}
		normalized := !a.Special
		if a.Normalized != nil {
			normalized = *a.Normalized
		}
		v := raw
		if normalized {
			v = normed
			if norm != nil {
				tok.content = norm.normalize(tok.content)
			}
			if tok.content == "" {
				continue
			}
		}
		v.byFirst[tok.content[0]] = append(v.byFirst[tok.content[0]], len(v.tokens))
		v.tokens = append(v.tokens, tok)
	}
	return raw, normed, nil
}

// split cuts the text pieces of ps around the added tokens they contain.
// Pieces that are already tokens pass through. Empty text pieces are dropped.
func (v *addedVocab) split(ps []piece) []piece {
	if len(v.tokens) == 0 {
		return ps
	}
	var out []piece
	for _, p := range ps {
		if p.id >= 0 {
			out = append(out, p)
			continue
		}
		s := p.s
		last := 0 // end of the previous token (with what it stripped)
		for pos := 0; pos < len(s); {
			k, end := v.match(s, pos)
			if k < 0 {
				pos++
				continue
			}
			tok := &v.tokens[k]
			start := pos
			pos = end // matches never overlap, even a rejected one
			if tok.singleWord && (endsWithWord(s[:start]) || startsWithWord(s[end:])) {
				continue
			}
			if tok.lstrip {
				start = max(last, trimSpaceLeft(s, start))
			}
			if tok.rstrip {
				end = trimSpaceRight(s, end)
				pos = end
			}
			if start > last {
				out = append(out, piece{s: s[last:start], first: p.first && last == 0, id: -1})
			}
			out = append(out, piece{s: tok.content, id: tok.id})
			last = end
		}
		if last < len(s) {
			out = append(out, piece{s: s[last:], first: p.first && last == 0, id: -1})
		}
	}
	return out
}

// match returns the index of the longest token starting at s[pos:] and the
// end of the match, or -1.
func (v *addedVocab) match(s string, pos int) (int, int) {
	best, end := -1, 0
	for _, k := range v.byFirst[s[pos]] {
		c := v.tokens[k].content
		if len(c) > end-pos && len(s)-pos >= len(c) && s[pos:pos+len(c)] == c {
			best, end = k, pos+len(c)
		}
	}
	return best, end
}

// isWord reports whether r is a word character (\w in Unicode regular expressions).
func isWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) ||
		unicode.Is(unicode.Mc, r) || unicode.Is(unicode.Me, r) || unicode.Is(unicode.Pc, r)
}

func endsWithWord(s string) bool {
	r, size := utf8.DecodeLastRuneInString(s)
	return size > 0 && isWord(r)
}

func startsWithWord(s string) bool {
	r, size := utf8.DecodeRuneInString(s)
	return size > 0 && isWord(r)
}

// trimSpaceLeft returns where the run of white space that ends at s[:i] starts.
func trimSpaceLeft(s string, i int) int {
	for i > 0 {
		r, size := utf8.DecodeLastRuneInString(s[:i])
		if !unicode.IsSpace(r) {
			break
		}
		i -= size
	}
	return i
}

// trimSpaceRight returns where the run of white space that starts at s[i:] ends.
func trimSpaceRight(s string, i int) int {
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += size
	}
	return i
}
