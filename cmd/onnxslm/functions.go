package main

import (
	"fmt"

	"github.com/onnxslm/onnxslm/internal/builtin"
	"github.com/onnxslm/onnxslm/onnx"
)

// inlineFunctions is the load step for models with local functions
// (torch.onnx.dynamo_export writes one per module): every command but
// convert works on the flat graph, and prune writes it flat
// (docs/design/formats.md, section 3).
func inlineFunctions(arg string, m *onnx.Model) (*onnx.Model, error) {
	p, err := onnx.InlineFunctions(m.Proto)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", arg, err)
	}
	m.Proto = p
	return m, nil
}

// loadModelFaithful loads a MODEL argument as written, functions kept (convert).
func loadModelFaithful(arg string) (*onnx.Model, error) {
	if builtin.IsBuiltin(arg) {
		return loadModelArg(arg)
	}
	return onnx.Load(arg)
}
