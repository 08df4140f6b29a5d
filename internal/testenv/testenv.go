// Package testenv locates the repository and the shared reference material
// (../shared/testmodels) for tests, and for the measurement commands
// (internal/cmd/benchort, internal/results).
//
// What a test needs from outside the repository (the shared models, the
// judges of internal/judge) follows one policy, Unavailable: where it is
// absent the test is skipped with a message saying why, except when the
// environment has CI=true, where the test fails, so CI never skips silently.
package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/reference"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// SkipMessage is the reason given when ../shared/testmodels is absent.
const SkipMessage = "../shared/testmodels not found (tests with the shared reference models run in this project's CI; see README)"

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// Root returns the repository root: the folder that holds go.mod, walking up
// from this source file's directory (and, failing that, from the working
// directory).
func Root() (string, error) {
	rootOnce.Do(func() { rootDir, rootErr = findRoot() })
	return rootDir, rootErr
}

func findRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for d := dir; ; {
			if fi, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && !fi.IsDir() {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", errors.New("testenv: repository root (folder with go.mod) not found above the working directory")
}

// RepoRoot returns the repository root: the nearest folder with go.mod above
// the test. It fails the test if there is none.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// InCI reports whether the tests run in CI (CI=true, as .ci/run sets it),
// where a missing prerequisite is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable reports that something the test needs is missing: it skips the
// test with reason, or fails it when CI=true.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI=true: CI must provide it, so the test fails instead of skipping)", reason)
		return
	}
	t.Skip(reason)
}

// Long skips t in -short mode, with what as the reason (what the test runs
// that takes long).
func Long(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip(what)
	}
}

// Getenv returns the environment variable name that an opt-in test (a
// measurement, a check against files kept outside the repository) needs,
// skipping t with why when it is unset. Unlike Unavailable it skips under
// CI too: such tests are not part of the suite.
func Getenv(t testing.TB, name, why string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skip(why)
	}
	return v
}

// Ablation skips t unless ONNXSLM_ABLATION is set: the measurements behind
// docs/design/method.md take minutes and are not part of the suite (they
// skip under CI too; see Getenv).
func Ablation(t testing.TB) {
	t.Helper()
	Getenv(t, "ONNXSLM_ABLATION", "a measurement, minutes long: set ONNXSLM_ABLATION=1 to run it")
}

// SharedDir returns <repo>/../shared. When ../shared/testmodels does not
// exist it skips the test with SkipMessage (fails it when CI=true; see
// Unavailable).
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(RepoRoot(t)), "shared")
	if fi, err := os.Stat(filepath.Join(dir, "testmodels")); err != nil || !fi.IsDir() {
		Unavailable(t, SkipMessage)
	}
	return dir
}

// TestModelsDir returns <repo>/../shared/testmodels (skipping or failing as
// SharedDir does).
func TestModelsDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(SharedDir(t), "testmodels")
}

// TestModel returns the path of ../shared/testmodels/NAME.onnx. It skips as
// SharedDir does, and fails the test if the folder exists but the model does
// not (a typo in a test must not turn into a silent skip).
func TestModel(t testing.TB, name string) string {
	t.Helper()
	return TestFile(t, name+".onnx")
}

// TestFile returns the path of ../shared/testmodels/REL (e.g. "llama8.hidden.npy"
// or "tokens/calib_train_16x128.npy"), skipping as SharedDir does and failing
// the test when the file is missing.
func TestFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(TestModelsDir(t), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return p
}

// Streams returns, from the shared model NAME's truth file, the value names
// of its residual stream ([0] entering layer 0 ... [L] leaving the last
// layer) and of its final-normed hidden state.
func Streams(t testing.TB, name string) (hidden []string, finalNorm string) {
	t.Helper()
	tr, err := reference.LoadTruth(TestModelsDir(t), name)
	if err != nil {
		t.Fatal(err)
	}
	hidden, finalNorm, err = tr.Streams()
	if err != nil {
		t.Fatal(err)
	}
	return hidden, finalNorm
}

// SLM returns the shared model NAME's recorded SLM runs (NAME.slm.json),
// skipping as SharedDir does.
func SLM(t testing.TB, name string) *reference.SLM {
	t.Helper()
	ref, err := reference.LoadSLM(TestModelsDir(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// ReadModelProto reads the model file at path as a plain message, without
// checking it or resolving its external data, failing t on an error.
func ReadModelProto(t testing.TB, path string) *pb.ModelProto {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// DirNames returns the names in folder dir, sorted by name as os.ReadDir
// sorts them, failing t when it cannot be read.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
