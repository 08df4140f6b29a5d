package main

import (
	"fmt"
	"sync"

	"github.com/onnxslm/onnxslm/internal/builtin"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
)

// written maps a model inlined at load to the model as written, for
// refoldOutput.
var written sync.Map // *pb.ModelProto (inlined) → *pb.ModelProto (as read)

// inlineFunctions is the load step for models with local functions
// (torch.onnx.dynamo_export writes one per module): every command but
// convert works on the flat graph; prune writes its result back with the
// functions (refoldOutput).
func inlineFunctions(arg string, m *onnx.Model) (*onnx.Model, error) {
	p, err := onnx.InlineFunctions(m.Proto)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", arg, err)
	}
	if p != m.Proto {
		written.Store(p, m.Proto)
	}
	m.Proto = p
	return m, nil
}

// refoldOutput returns out, the rewrite of loaded, in the format loaded was
// read in: the kept layers' function calls back in place of their inlined
// bodies (rewrite.RefoldFunctions), or out flat, said on stderr, when that
// cannot be done.
func refoldOutput(io *stdio, loaded, out *pb.ModelProto) *pb.ModelProto {
	v, ok := written.Load(loaded)
	if !ok {
		return out
	}
	m, err := rewrite.RefoldFunctions(v.(*pb.ModelProto), out)
	if err != nil {
		fmt.Fprintf(io.Stderr, "onnxslm: writing the graph flat (functions inlined): %v\n", err)
		return out
	}
	return m
}

// loadModelFaithful loads a MODEL argument as written, functions kept (convert).
func loadModelFaithful(arg string) (*onnx.Model, error) {
	if builtin.IsBuiltin(arg) {
		return loadModelArg(arg)
	}
	return onnx.Load(arg)
}
