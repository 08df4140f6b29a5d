// Package testsession opens models in the Go runtime for the tests of the
// packages above it (lm, harness, similarity). It is apart from testenv
// because the runtime's own tests import testenv.
package testsession

import (
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/runtime"
)

// Open loads the model at path (external data next to it) into a runtime
// session with default options, failing t on an error.
func Open(t testing.TB, path string) *runtime.Session {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.New(m.Proto, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Shared opens the shared reference model name (../shared/testmodels),
// skipping or failing as testenv.SharedDir does when it is absent.
func Shared(t testing.TB, name string) *runtime.Session {
	t.Helper()
	return Open(t, testenv.TestModel(t, name))
}
