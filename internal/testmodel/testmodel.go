// Package testmodel loads models and reads their parts for the tests of the
// packages that work on a decoder stack (discover and above).
package testmodel

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Find finds m's decoder stack (discover.Find), failing t on an error.
func Find(t testing.TB, m *pb.ModelProto) *discover.Stack {
	t.Helper()
	s, err := discover.Find(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Load loads the model at path (external data next to it), failing t on an
// error.
func Load(t testing.TB, path string) *onnx.Model {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Stack loads the model at path (external data next to it) and finds its
// decoder stack, failing t on an error.
func Stack(t testing.TB, path string) (*onnx.Model, *discover.Stack) {
	t.Helper()
	m := Load(t, path)
	return m, Find(t, m.Proto)
}

// Generated builds the model c describes (modelgen.Build) and finds its
// decoder stack, failing t on an error.
func Generated(t testing.TB, c modelgen.Config) (*pb.ModelProto, *discover.Stack) {
	t.Helper()
	m, err := modelgen.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	return m, Find(t, m)
}

// MergedPair builds optimum's merged decoder for c
// (modelgen.BuildOptimumMerged) and splits it into its two branches, failing
// t on an error.
func MergedPair(t testing.TB, c modelgen.Config) (*pb.ModelProto, *merged.Pair) {
	t.Helper()
	m, err := modelgen.BuildOptimumMerged(c)
	if err != nil {
		t.Fatal(err)
	}
	p, err := merged.Split(m)
	if err != nil {
		t.Fatal(err)
	}
	return m, p
}

// Shared is Stack for the shared reference model name (../shared/testmodels),
// skipping or failing as testenv.SharedDir does when it is absent.
func Shared(t testing.TB, name string) (*onnx.Model, *discover.Stack) {
	t.Helper()
	return Stack(t, testenv.TestModel(t, name))
}

// Floats returns the values of m's float initializer name, failing t when
// there is none or it does not decode as float32.
func Floats(t testing.TB, m *pb.ModelProto, name string) []float32 {
	t.Helper()
	for _, x := range m.GetGraph().GetInitializer() {
		if x.GetName() == name {
			f, err := onnx.Float32s(x)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no initializer %q", name)
	return nil
}

// Write saves m at path, serialized as modelgen.Marshal does
// (deterministically), and returns path; it fails t on an error.
func Write(t testing.TB, path string, m *pb.ModelProto) string {
	t.Helper()
	b, err := modelgen.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// inputDims are the dimensions of m's graph input name as declared, a
// symbolic dimension read as 0; it fails t when there is no such input.
func inputDims(t testing.TB, m *pb.ModelProto, name string) []int {
	t.Helper()
	for _, x := range m.GetGraph().GetInput() {
		if x.GetName() == name {
			var d []int
			for _, v := range x.GetType().GetTensorType().GetShape().GetDim() {
				d = append(d, int(v.GetDimValue()))
			}
			return d
		}
	}
	t.Fatalf("no input %q", name)
	return nil
}

// RandomPast is a value for m's past key or value input name: [1, heads,
// past, head_dim] with heads and head_dim as declared, standard normal values
// drawn from r.
func RandomPast(t testing.TB, m *pb.ModelProto, name string, past int, r *rand.Rand) *npy.Array {
	t.Helper()
	d := inputDims(t, m, name) // [batch?, heads, past?, head_dim]: symbolic dims read as 0
	if len(d) != 4 {
		t.Fatalf("past input %q has dims %v, want 4", name, d)
	}
	shape := []int{1, d[1], past, d[3]}
	data := make([]float32, shape[1]*past*shape[3])
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	a, err := npy.New(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
