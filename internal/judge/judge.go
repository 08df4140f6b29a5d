// Package judge runs external judges in tests: onnxruntime (npm
// onnxruntime-node, through tools/judges/ort_run.js) executes models, and the
// ONNX checker (Debian python3-onnx, through tools/judges/check_model.py)
// validates them.
//
// Where a judge is not installed, the test that asks for it is skipped with a
// message saying how to install it (.ci/install-judges.sh), except when the
// environment has CI=true: there the test fails, so CI never skips a judge
// (testenv.Unavailable, the policy the shared reference models follow too).
package judge

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
)

// InstallHint tells how to install the judges.
const InstallHint = "run .ci/install-judges.sh"

// require returns the judge find locates, or skips the test with find's
// reason why there is none (fails it when CI=true; see testenv.Unavailable).
func require[J any](t testing.TB, find func() (*J, string)) *J {
	t.Helper()
	j, reason := find()
	if j == nil {
		testenv.Unavailable(t, reason)
	}
	return j
}

// judgesDir returns tools/judges of the repository holding this file.
func judgesDir() (string, bool) {
	_, file, _, ok := runtime.Caller(0)
	if ok {
		// internal/judge/judge.go -> repo root
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		dir := filepath.Join(root, "tools", "judges")
		if _, err := os.Stat(filepath.Join(dir, "ort_run.js")); err == nil {
			return dir, true
		}
	}
	// -trimpath builds: walk up from the working directory.
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for d := wd; ; d = filepath.Dir(d) {
		dir := filepath.Join(d, "tools", "judges")
		if _, err := os.Stat(filepath.Join(dir, "ort_run.js")); err == nil {
			return dir, true
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}
