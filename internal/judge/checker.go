package judge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
)

// errTooNew marks, inside this package, a model the installed checker cannot
// judge.
var errTooNew = errors.New("not judged: the model needs a newer ONNX than the installed checker")

// Check runs the ONNX checker (full_check=True) through
// tools/judges/check_model.py.
type Check struct {
	python string
	script string
}

// Checker returns the ONNX checker judge. It skips the test when no python3
// with the onnx module is found (fails it when CI=true). The interpreter is
// $ONNXSLM_PYTHON if set, else /usr/bin/python3 (Debian's, where python3-onnx
// installs), else python3 on PATH.
func Checker(t testing.TB) *Check {
	t.Helper()
	return require(t, findChecker)
}

var (
	checkerOnce   sync.Once
	checkerFound  *Check
	checkerReason string
)

func findChecker() (*Check, string) {
	checkerOnce.Do(func() {
		dir, ok := judgesDir()
		if !ok {
			checkerReason = "python3-onnx not installed: tools/judges not found; " + InstallHint
			return
		}
		var candidates []string
		if p := os.Getenv("ONNXSLM_PYTHON"); p != "" {
			candidates = append(candidates, p)
		}
		candidates = append(candidates, "/usr/bin/python3")
		if p, err := exec.LookPath("python3"); err == nil {
			candidates = append(candidates, p)
		}
		for _, py := range candidates {
			if err := exec.Command(py, "-c", "import onnx.checker").Run(); err == nil {
				checkerFound = &Check{python: py, script: filepath.Join(dir, "check_model.py")}
				return
			}
		}
		checkerReason = "python3-onnx not installed (no python3 imports onnx): " + InstallHint
	})
	return checkerFound, checkerReason
}

// Valid judges the model at path (with its external data): the test fails
// when the checker rejects it, and is skipped with the reason when the model
// is too new for the installed checker (fails under CI=true, as a missing
// judge does; see testenv.Unavailable). It never passes without a verdict.
func (c *Check) Valid(t testing.TB, path string) {
	t.Helper()
	err := c.check(path)
	switch {
	case err == nil:
	case errors.Is(err, errTooNew):
		testenv.Unavailable(t, err.Error())
	default:
		t.Errorf("ONNX checker refuses %s: %v", path, err)
	}
}

// Check checks the model at path (with its external data) and returns nil
// when it is valid, and an error with the checker's message when it is not
// or when its IR version or opset is newer than the checker knows: a model
// that was not judged is not reported valid. The file is never modified.
func (c *Check) Check(path string) error { return c.check(path) }

// check is Check, its error wrapping errTooNew for a model the installed
// checker cannot judge.
func (c *Check) check(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.python, c.script, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr.String()), "check_model: "))
	if ctx.Err() != nil {
		return fmt.Errorf("judge: onnx checker on %s: timed out after %v", path, Timeout)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case 1:
			return fmt.Errorf("judge: onnx checker: %s", msg)
		case 3:
			return fmt.Errorf("judge: onnx checker: %s: %w", msg, errTooNew)
		}
	}
	return fmt.Errorf("judge: onnx checker on %s failed to run: %s (%v)", path, msg, err)
}

// Python returns the interpreter the checker runs with.
func (c *Check) Python() string { return c.python }
