package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// HF is a tokenizer loaded from a Hugging Face tokenizer.json file.
//
// Supported: model BPE (vocab; merges as "a b" strings or [a, b] pairs;
// unk_token, fuse_unk, byte_fallback, continuing_subword_prefix,
// end_of_word_suffix, ignore_merges); added_tokens (matched before the
// normalizer, or after it when "normalized" is true; single_word, lstrip,
// rstrip); normalizers NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend,
// Replace and Sequence; pre-tokenizers ByteLevel, Metaspace, Split (string or
// regular-expression pattern, all five behaviours, invert), Whitespace,
// WhitespaceSplit, Digits and Sequence; post-processors TemplateProcessing,
// RobertaProcessing, BertProcessing, ByteLevel and Sequence. BPE dropout,
// truncation, padding and the decoder are ignored: encoding is deterministic
// and never truncates.
//
// Encode is safe for concurrent use.
type HF struct {
	model   *bpe
	norm    normalizer   // nil: none
	pre     preTokenizer // nil: the whole normalized text is one word
	post    *postProcessor
	raw     *addedVocab // added tokens matched on the raw text
	normed  *addedVocab // added tokens matched on the normalized text
	special bool
	vocab   int
}

var _ Tokenizer = (*HF)(nil)

// fileJSON is the part of tokenizer.json this package reads.
type fileJSON struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Model         json.RawMessage  `json:"model"`
}

// Parse builds a tokenizer from the contents of a tokenizer.json file.
func Parse(data []byte, opts ...Option) (*HF, error) {
	cfg := config{special: true}
	for _, o := range opts {
		o(&cfg)
	}
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json file: %w", err)
	}
	if isNull(f.Model) {
		return nil, fmt.Errorf("no \"model\" section")
	}
	model, err := parseModel(f.Model)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	t := &HF{model: model, special: cfg.special}
	if t.norm, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	if t.post, err = parsePostProcessor(f.PostProcessor); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	if t.raw, t.normed, err = parseAddedTokens(f.AddedTokens, t.norm, model); err != nil {
		return nil, fmt.Errorf("added_tokens: %w", err)
	}
	maxID := model.maxID
	for _, v := range []*addedVocab{t.raw, t.normed} {
		for _, tok := range v.tokens {
			maxID = max(maxID, tok.id)
		}
	}
	for _, ids := range [][]int32{t.post.prefix, t.post.suffix} {
		for _, id := range ids {
			maxID = max(maxID, id)
		}
	}
	t.vocab = int(maxID) + 1
	return t, nil
}

// VocabSize is one more than the largest id in the vocabulary, the added
// tokens and the post-processor's special tokens: a model that accepts ids
// below its embedding's row count accepts every id Encode returns when
// VocabSize is at most that count.
func (t *HF) VocabSize() int { return t.vocab }

// Specials returns the ids the post-processor puts before and after the text
// (for Llama-style files, prefix is the BOS id), whether or not Encode adds
// them. Callers that cut one long text into rows can use them to give every
// row its BOS.
func (t *HF) Specials() (prefix, suffix []int64) {
	return widen(t.post.prefix), widen(t.post.suffix)
}

// Encode returns the token ids of text. Bytes that are not valid UTF-8 are
// kept as single-byte characters: byte-level and byte-fallback tokenizers
// encode them faithfully, others map them to the unknown token.
func (t *HF) Encode(text string) ([]int64, error) {
	var ids []int32
	if t.special {
		ids = append(ids, t.post.prefix...)
	}
	var err error
	pieces := t.raw.split([]piece{{s: text, first: true, id: -1}})
	var words []piece
	for _, p := range pieces {
		if p.id >= 0 {
			words = append(words, p)
			continue
		}
		if t.norm != nil {
			p.s = t.norm.normalize(p.s)
		}
		for _, q := range t.normed.split([]piece{p}) {
			if q.id >= 0 || t.pre == nil {
				if q.id >= 0 || q.s != "" {
					words = append(words, q)
				}
				continue
			}
			words = t.pre.split(q, words)
		}
	}
	for _, w := range words {
		if w.id >= 0 {
			ids = append(ids, w.id)
			continue
		}
		if w.s == "" {
			continue
		}
		if ids, err = t.model.encode(w.s, ids); err != nil {
			return nil, err
		}
	}
	if t.special {
		ids = append(ids, t.post.suffix...)
	}
	return widen(ids), nil
}

func widen(ids []int32) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

// piece is a part of the text on its way to the model.
type piece struct {
	s     string
	first bool  // starts at the beginning of the input text
	id    int32 // >= 0: an added token matched whole; s is then its content
}

// isNull reports whether a JSON value is absent or null.
// parseComponent parses one pipeline component (a normalizer or a
// pre-tokenizer): null is none (the zero T), a "Sequence" is the components
// listed under key joined by seq, and every other type is parsed by one.
func parseComponent[T any](raw json.RawMessage, key string, seq func([]T) T, one func(typ string, raw json.RawMessage) (T, error)) (T, error) {
	var zero T
	if isNull(raw) {
		return zero, nil
	}
	typ, err := typeOf(raw)
	if err != nil {
		return zero, err
	}
	if typ != "Sequence" {
		return one(typ, raw)
	}
	parts, err := parseSequence(raw, key, func(r json.RawMessage) (T, error) { return parseComponent(r, key, seq, one) })
	if err != nil {
		return zero, err
	}
	return seq(parts), nil
}

// parseSequence parses a "Sequence" component (of normalizers or
// pre-tokenizers): the list under key, each element by parse; null elements
// are dropped.
func parseSequence[T any](raw json.RawMessage, key string, parse func(json.RawMessage) (T, error)) ([]T, error) {
	var s map[string]json.RawMessage
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("Sequence: %w", err)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(s[key], &list); err != nil && !isNull(s[key]) {
		return nil, fmt.Errorf("Sequence: %s: %w", key, err)
	}
	var out []T
	for i, r := range list {
		x, err := parse(r)
		if err != nil {
			return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
		}
		if any(x) != nil { // T is an interface; a null element parses to nil
			out = append(out, x)
		}
	}
	return out, nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// typeOf reads the "type" field of a component.
func typeOf(raw json.RawMessage) (string, error) {
	var h struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", err
	}
	if h.Type == nil {
		return "", fmt.Errorf("no \"type\" field in %s", clip(raw))
	}
	return *h.Type, nil
}

// clip shortens a JSON fragment for an error message.
func clip(raw []byte) string {
	s := strings.Join(strings.Fields(string(raw)), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
