package main

// Determinism: the same input and flags give a byte-identical output model
// and report (timing fields aside), run after run and whatever GOMAXPROCS is.
// The CLI runs as a subprocess (this test binary re-executed with
// ONNXSLM_TEST_MAIN=1, see init below) so that GOMAXPROCS applies from the
// start, as it does for a user.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onnxslm/onnxslm/internal/testenv"
)

// mainEnv, when set to 1 in the environment, makes this test binary run
// Main on its arguments and exit instead of running tests.
const mainEnv = "ONNXSLM_TEST_MAIN"

func init() {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(Main(context.Background(), os.Args[1:], newStdio()))
	}
}

// runSubprocess runs onnxslm args in a child process (this test binary as the
// CLI) with env added to the environment. With sh and prelude given, the
// child starts through `sh -c 'PRELUDE && exec ...'` (for ulimit).
func runSubprocess(t *testing.T, sh, prelude string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if sh != "" {
		cmd = exec.CommandContext(ctx, sh, append([]string{"-c", prelude + ` && exec "$0" "$@"`, exe}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, exe, args...)
	}
	cmd.Env = append(append(os.Environ(), mainEnv+"=1"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run onnxslm %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("onnxslm %s: timed out", strings.Join(args, " "))
	}
	return code, out.String(), errb.String()
}

// timingField matches the report's timing fields and their values: the only
// bytes allowed to differ between two runs.
var timingField = regexp.MustCompile(`"([a-z_]*_seconds|seconds)": *[-+0-9.eE]+`)

func maskTimings(b []byte) []byte {
	return timingField.ReplaceAll(b, []byte(`"$1": <time>`))
}

// pruneRun is one prune's output files, read back.
type pruneRun struct {
	label  string
	files  map[string][]byte // model, data file (if any), report; by base name
	stdout string
}

func readRun(t *testing.T, label, dir, stdout string) pruneRun {
	t.Helper()
	r := pruneRun{label: label, files: map[string][]byte{}, stdout: stdout}
	for _, name := range testenv.DirNames(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".json") {
			b = maskTimings(b)
		}
		r.files[name] = b
	}
	r.stdout = string(maskTimings([]byte(stdout)))
	return r
}

// firstDiff describes where a and b first differ.
func firstDiff(a, b []byte) string {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			lo := max(0, i-40)
			return fmt.Sprintf("at byte %d of %d/%d: %q vs %q", i, len(a), len(b), a[lo:min(len(a), i+40)], b[lo:min(len(b), i+40)])
		}
	}
	return fmt.Sprintf("one is a prefix of the other (%d vs %d bytes)", len(a), len(b))
}

func compareRuns(t *testing.T, want, got pruneRun) {
	t.Helper()
	if len(want.files) != len(got.files) {
		t.Errorf("%s wrote %d files, %s wrote %d", want.label, len(want.files), got.label, len(got.files))
	}
	for name, w := range want.files {
		g, ok := got.files[name]
		if !ok {
			t.Errorf("%s wrote %s, %s did not", want.label, name, got.label)
			continue
		}
		if !bytes.Equal(w, g) {
			t.Errorf("%s differs between %s and %s: %s", name, want.label, got.label, firstDiff(w, g))
		}
	}
	if want.stdout != got.stdout {
		t.Errorf("--json on stdout differs between %s and %s: %s", want.label, got.label, firstDiff([]byte(want.stdout), []byte(got.stdout)))
	}
}

// TestDeterminism prunes the built-in model several ways, each twice or with
// GOMAXPROCS 1 and 2, and compares every output byte for byte.
func TestDeterminism(t *testing.T) {
	models := filepath.Join("..", "..", "testdata", "models")
	type flavour struct {
		name string
		args []string // after IN OUT
		in   string
		slow bool // skipped with -short
	}
	flavours := []flavour{
		// The default method, on a small model: run after run and GOMAXPROCS 1/2.
		{"tiny default", nil, filepath.Join(models, "tiny_llama.onnx"), false},
		// With recovery (training through gorgonia, Adam split across goroutines).
		{"tiny default recover", []string{"--recover", "--recover-steps", "30"}, filepath.Join(models, "tiny_llama_kv.onnx"), false},
		// SLM with external data on the built-in model (about a second a run).
		{"builtin slm external", []string{"--method", "slm", "--external-data", "--layers", "5", "--merge", "mean"}, "builtin:llama8", false},
		// The default method on the built-in model, as the README runs it (slower).
		{"builtin default", nil, "builtin:llama8", true},
	}
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			if f.slow && testing.Short() {
				t.Skip("the default method on llama8 takes seconds a run; skipped with -short")
			}
			var runs []pruneRun
			variants := []struct {
				label string
				env   []string
			}{
				{"GOMAXPROCS=1", []string{"GOMAXPROCS=1"}},
				{"GOMAXPROCS=2", []string{"GOMAXPROCS=2"}},
				{"GOMAXPROCS=2 again", []string{"GOMAXPROCS=2"}},
			}
			if f.in == "builtin:llama8" {
				variants = variants[:2] // run to run is covered by the tiny model
			}
			for _, v := range variants {
				dir := t.TempDir()
				out := filepath.Join(dir, "out.onnx")
				args := append([]string{"prune", "-q", "--json", f.in, out, "--report", filepath.Join(dir, "report.json")}, f.args...)
				code, stdout, stderr := runSubprocess(t, "", "", v.env, args...)
				if code != 0 {
					t.Fatalf("%s: onnxslm %s: exit %d: %s", v.label, strings.Join(args, " "), code, stderr)
				}
				runs = append(runs, readRun(t, v.label, dir, stdout))
			}
			if _, ok := runs[0].files["report.json"]; !ok {
				t.Fatalf("no report written: %v", runs[0].files)
			}
			for _, r := range runs[1:] {
				compareRuns(t, runs[0], r)
			}
		})
	}
}

// TestDeterminismInProcess: two prunes in one process (the runtime's pools
// and caches warm for the second) give the same bytes. Fast: runs with -short.
func TestDeterminismInProcess(t *testing.T) {
	in := filepath.Join("..", "..", "testdata", "models", "tiny_llama.onnx")
	var runs []pruneRun
	for i := range 2 {
		dir := t.TempDir()
		code, stdout, stderr := runMainSafe(t, "prune", "-q", "--json", in, filepath.Join(dir, "out.onnx"), "--report", filepath.Join(dir, "report.json"))
		if code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
		runs = append(runs, readRun(t, fmt.Sprintf("run %d", i+1), dir, stdout))
	}
	compareRuns(t, runs[0], runs[1])
}

// TestMaskTimings: the mask hides timing values and nothing else.
func TestMaskTimings(t *testing.T) {
	in := []byte(`{"similarity": 0.25, "candidate_seconds": 1.95, "wall_seconds": 2.2e-01, "layers_after": 6}`)
	want := `{"similarity": 0.25, "candidate_seconds": <time>, "wall_seconds": <time>, "layers_after": 6}`
	if got := string(maskTimings(in)); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
