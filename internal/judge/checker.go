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
)

// ErrNotCheckable is wrapped by the error of Check when the model needs a
// newer ONNX than the installed checker (Debian's onnx 1.12 knows IR <= 8 and
// opset <= 17): the model was not judged, neither valid nor invalid.
var ErrNotCheckable = errors.New("model needs a newer ONNX than the installed checker")

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
	c, reason := findChecker()
	if c == nil {
		unavailable(t, reason)
	}
	return c
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

// Check checks the model at path (with its external data) and returns nil
// when it is valid, an error with the checker's message when it is not, and
// an error wrapping ErrNotCheckable when its IR version or opset is newer
// than the checker knows. The file is never modified.
func (c *Check) Check(path string) error {
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
			return fmt.Errorf("judge: onnx checker: %s: %w", msg, ErrNotCheckable)
		}
	}
	return fmt.Errorf("judge: onnx checker on %s failed to run: %s (%v)", path, msg, err)
}

// Python returns the interpreter the checker runs with.
func (c *Check) Python() string { return c.python }
