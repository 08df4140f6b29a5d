// Package builtin ships a small trained model and a calibration set inside the
// binary, so that every command works on a fresh machine with no files at hand.
//
// llama8.onnx is a byte-level (vocab 256) Llama-style model with 8 decoder layers,
// trained on Go source and exported by torch.onnx.export (see ../../../shared/testmodels).
// calib_train_16x128.txt is 16 windows of 128 bytes of its training text.
package builtin

import (
	"bytes"
	_ "embed"
	"fmt"
	"sort"
	"strings"

	"github.com/onnxslm/onnxslm/harness"
)

// Prefix marks a model argument that names a built-in model: "builtin:llama8".
const Prefix = "builtin:"

//go:embed llama8.onnx
var llama8 []byte

//go:embed calib_train_16x128.txt
var calibTxt []byte

var models = map[string][]byte{"llama8": llama8}

// Names lists the built-in models.
func Names() []string {
	names := make([]string, 0, len(models))
	for n := range models {
		names = append(names, Prefix+n)
	}
	sort.Strings(names)
	return names
}

// IsBuiltin reports whether arg names a built-in model.
func IsBuiltin(arg string) bool { return strings.HasPrefix(arg, Prefix) }

// Model returns the serialized ModelProto of the built-in model named by arg
// ("builtin:NAME").
func Model(arg string) ([]byte, error) {
	b, ok := models[strings.TrimPrefix(arg, Prefix)]
	if !ok {
		return nil, fmt.Errorf("no built-in model %q (have %s)", arg, strings.Join(Names(), ", "))
	}
	return b, nil
}

// CalibrationText returns the default calibration token set: one sequence of
// space-separated token ids per line.
func CalibrationText() []byte { return calibTxt }

//go:embed go_next_line.jsonl
var goNextLine []byte

// Tasks lists the built-in multiple-choice tasks.
func Tasks() []string { return []string{Prefix + "go-next-line"} }

// Task returns the built-in multiple-choice task named by arg
// ("builtin:go-next-line"): 116 examples from held-out Go source (the last
// 20 % of the packages, never seen by builtin:llama8 in training), each a few
// complete lines of code and four candidate next lines, the real one and three
// from elsewhere in the held-out code (written by ./gentask). The choices
// follow the context's newline directly (no delimiter).
func Task(arg string) (*harness.Task, error) {
	if arg != Prefix+"go-next-line" {
		return nil, fmt.Errorf("no built-in task %q (have %s)", arg, strings.Join(Tasks(), ", "))
	}
	t, err := harness.Parse(bytes.NewReader(goNextLine), arg, "go-next-line", nil)
	if err != nil {
		return nil, err
	}
	t.Delimiter = ""
	return t, nil
}
