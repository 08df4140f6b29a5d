package main

import "github.com/onnxslm/onnxslm/internal/builtin"

func builtinNames() []string { return builtin.Names() }
