package main

import (
	"fmt"

	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// newSession starts a runtime session on m and reads the vocabulary size of
// its logits; errors name the model as the user gave it (arg).
func newSession(arg string, m *pb.ModelProto, opts runtime.Options) (*runtime.Session, int, error) {
	s, err := runtime.New(m, opts)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", arg, err)
	}
	vocab, err := lm.Vocab(s)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", arg, err)
	}
	return s, vocab, nil
}

// openModel loads the model argument (eval, generate) and starts a session on
// it with threads.
func openModel(arg string, threads int) (*runtime.Session, int, error) {
	m, err := loadModelArg(arg)
	if err != nil {
		return nil, 0, err
	}
	return newSession(arg, m.Proto, runtime.Options{Threads: threads})
}

// calibrationFor is calibFlags.load for model m (arg as the user gave it),
// whose vocabulary size it reads from a session on m with opts; when the rows
// are the built-in byte-level set but the model's ids are not bytes, it warns
// (unless quiet) that the results are for the wrong tokens; what names those
// results ("results", "decisions").
func (c *calibFlags) calibrationFor(arg string, m *pb.ModelProto, opts runtime.Options, quiet bool, warn func(format string, a ...any), what string) (rows [][]int64, from string, err error) {
	_, vocab, err := newSession(arg, m, opts)
	if err != nil {
		return nil, "", err
	}
	rows, from, err = c.load(vocab)
	if err != nil {
		return nil, "", err
	}
	if from == builtinCalibName && vocab != 256 && !quiet {
		warn("onnxslm: calibrating on the built-in byte-level set; pass --calib or --calib-text with your model's tokens for meaningful %s\n", what)
	}
	return rows, from, nil
}
