// Package tokenizer turns calibration text into token ids: it loads Hugging
// Face tokenizer.json files (BPE models) and provides a byte-level fallback for
// models whose vocabulary is the 256 byte values.
package tokenizer

import (
	"fmt"
	"os"
)

// Tokenizer encodes text to token ids.
type Tokenizer interface {
	// Encode returns the ids of text.
	Encode(text string) ([]int64, error)
	// VocabSize is one more than the largest id Encode can return.
	VocabSize() int
}

// Option changes how Load builds a tokenizer.
type Option func(*config)

type config struct {
	special bool
}

// WithSpecialTokens says whether Encode applies the file's post-processor
// (for example TemplateProcessing adding a BOS token), as the Hugging Face
// library's add_special_tokens does. The default is true, like the library's.
func WithSpecialTokens(on bool) Option {
	return func(c *config) { c.special = on }
}

// Load reads a Hugging Face tokenizer.json file. It supports BPE models with
// the pre-tokenizers, normalizers and post-processors that decoder-only LLMs
// use (see HF) and fails with a clear message for anything else.
func Load(path string, opts ...Option) (Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	tk, err := Parse(data, opts...)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return tk, nil
}

// Bytes returns the byte-level tokenizer: each byte of the UTF-8 text is one
// token whose id is the byte's value (vocabulary 256), as the shared test
// models use.
func Bytes() Tokenizer { return byteTokenizer{} }

type byteTokenizer struct{}

func (byteTokenizer) Encode(text string) ([]int64, error) {
	ids := make([]int64, len(text))
	for i := 0; i < len(text); i++ {
		ids[i] = int64(text[i])
	}
	return ids, nil
}

func (byteTokenizer) VocabSize() int { return 256 }

// Chunk cuts ids into calibration rows of exactly seqLen ids each, from
// consecutive non-overlapping windows; the last window is dropped when it is
// shorter than seqLen. When there are more windows than maxRows (and maxRows
// is positive), maxRows of them are taken evenly spread over the text, in
// order, so that the rows sample all of it rather than only its beginning.
// The rows share memory with ids (with their capacity capped, so appending to
// a row does not overwrite the next). It returns nil when seqLen is not
// positive or ids holds fewer than seqLen ids.
func Chunk(ids []int64, seqLen, maxRows int) [][]int64 {
	if seqLen <= 0 {
		return nil
	}
	n := len(ids) / seqLen
	if n == 0 {
		return nil
	}
	rows := n
	if maxRows > 0 && maxRows < n {
		rows = maxRows
	}
	out := make([][]int64, rows)
	for i := range rows {
		w := i
		if rows < n {
			w = i * n / rows
		}
		out[i] = ids[w*seqLen : (w+1)*seqLen : (w+1)*seqLen]
	}
	return out
}
