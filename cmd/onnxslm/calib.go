package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/onnxslm/onnxslm/internal/builtin"
	"github.com/onnxslm/onnxslm/tokenizer"
	"github.com/onnxslm/onnxslm/tokens"
)

// builtinCalibName is where calibFlags.load says the built-in rows came from.
const builtinCalibName = "built-in calibration set"

// calibFlags are the flags that choose calibration tokens (prune, analyze).
type calibFlags struct {
	file      string
	text      string
	tokenizer string
	seqLen    int
	rows      int
}

func addCalibFlags(fs *pflag.FlagSet) *calibFlags {
	c := &calibFlags{}
	fs.StringVar(&c.file, "calib", "", "calibration token ids: .npy (int64/int32 [N, T]) or .txt (one sequence per line); default: the built-in set (16×128 bytes of Go source)")
	fs.StringVar(&c.text, "calib-text", "", "calibration text, tokenized with --tokenizer (or byte-level for vocab-256 models)")
	fs.StringVar(&c.tokenizer, "tokenizer", "", "Hugging Face tokenizer.json for --calib-text")
	fs.IntVar(&c.seqLen, "calib-seq-len", 128, "tokens per calibration sequence cut from --calib-text")
	fs.IntVar(&c.rows, "calib-rows", 16, "calibration sequences cut from --calib-text (spread over the text)")
	return c
}

// load returns the calibration rows and a description of where they came from.
// vocab is the model's vocabulary size, for validating the ids.
func (c *calibFlags) load(vocab int) ([][]int64, string, error) {
	if c.file != "" && c.text != "" {
		return nil, "", usagef("give --calib or --calib-text, not both")
	}
	if c.tokenizer != "" && c.text == "" {
		return nil, "", usagef("--tokenizer goes with --calib-text")
	}
	var set *tokens.Set
	var from string
	switch {
	case c.file != "":
		s, err := tokens.Read(c.file)
		if err != nil {
			return nil, "", err
		}
		set, from = s, c.file
	case c.text != "":
		if c.seqLen < 2 || c.rows < 1 {
			return nil, "", usagef("--calib-seq-len must be at least 2 and --calib-rows at least 1")
		}
		text, err := os.ReadFile(c.text)
		if err != nil {
			return nil, "", fmt.Errorf("calibration text: %w", err)
		}
		var tok tokenizer.Tokenizer
		if c.tokenizer != "" {
			tok, err = tokenizer.Load(c.tokenizer)
			if err != nil {
				return nil, "", fmt.Errorf("tokenizer %s: %w", c.tokenizer, err)
			}
		} else {
			if vocab != 256 {
				return nil, "", usagef("--calib-text needs --tokenizer for a model with a vocabulary of %d (byte-level ids need 256)", vocab)
			}
			tok = tokenizer.Bytes()
		}
		ids, err := tok.Encode(string(text))
		if err != nil {
			return nil, "", fmt.Errorf("tokenize %s: %w", c.text, err)
		}
		rows := tokenizer.Chunk(ids, c.seqLen, c.rows)
		if len(rows) == 0 {
			return nil, "", fmt.Errorf("%s: %d tokens, fewer than one calibration sequence of %d", c.text, len(ids), c.seqLen)
		}
		set, from = &tokens.Set{Name: c.text, Rows: rows}, c.text
	default:
		s, err := tokens.Parse(bytes.NewReader(builtin.CalibrationText()), builtinCalibName, tokens.Text)
		if err != nil {
			return nil, "", err
		}
		set, from = s, builtinCalibName
	}
	if set.Len() == 0 {
		return nil, "", fmt.Errorf("%s: no calibration sequences", from)
	}
	if err := set.Validate(vocab); err != nil {
		return nil, "", err
	}
	return set.Rows, from, nil
}
