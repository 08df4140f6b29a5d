package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPruneMethodFlags runs every method with every flag that shapes the
// decision. A combination the method cannot use exits 2 naming both flags
// before the model is read; one it can use gets past the option check and
// fails on the missing input model instead (exit 1, naming the file), so the
// table costs no pruning runs.
func TestPruneMethodFlags(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "missing.onnx"), filepath.Join(dir, "out.onnx")
	methods := []string{"", "slm", "shortgpt", "drop", "auto"}
	flags := []struct {
		args []string
		// usedBy lists the methods that use the flag; nil: all of them.
		usedBy []string
	}{
		{nil, nil},
		{[]string{"--merge", "paper"}, []string{"slm"}},
		{[]string{"--merge", "code"}, []string{"slm"}},
		{[]string{"--merge", "mean"}, []string{"slm"}},
		{[]string{"--merge", "drop"}, []string{"slm"}},
		{[]string{"--threshold", "0.9"}, nil},
		{[]string{"--layers", "6"}, nil},
		{[]string{"--prune-ratio", "0.25"}, nil},
		{[]string{"--keep-kv-numbers"}, nil},
		{[]string{"--batch", "4"}, nil},
		{[]string{"--threads", "1"}, nil},
		{[]string{"--recover"}, nil},
		{[]string{"--recover", "--recover-steps", "50", "--recover-budget", "1m", "--recover-lr", "1e-3"}, nil},
		{[]string{"--params-ratio", "0.3"}, []string{"", "auto"}},
	}
	for _, m := range methods {
		for _, fl := range flags {
			args := []string{"prune", "-q"}
			if m != "" {
				args = append(args, "--method", m)
			}
			args = append(append(args, fl.args...), in, out)
			used := fl.usedBy == nil
			for _, u := range fl.usedBy {
				used = used || u == m
			}
			t.Run(strings.Join(args[2:len(args)-2], " "), func(t *testing.T) {
				code, _, stderr := runCLI(t, args...)
				if used {
					if code != 1 || !strings.Contains(stderr, "missing.onnx") {
						t.Errorf("exit %d, %q; want the options accepted (exit 1 on the missing model)", code, stderr)
					}
					return
				}
				method := m
				if method == "" {
					method = "auto"
				}
				want := fl.args[0] + " " + fl.args[1] + " with --method " + method
				if code != 2 || !strings.Contains(stderr, want) {
					t.Errorf("exit %d, %q; want exit 2 naming %q", code, stderr, want)
				}
			})
		}
	}
}

// TestPruneIgnoredFlags: the two combinations that used to be accepted and
// silently ignored.
func TestPruneIgnoredFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.onnx")
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"prune", "builtin:llama8", out, "--merge", "code"}, []string{"--merge code", "--method auto"}},
		{[]string{"prune", "builtin:llama8", out, "--method", "shortgpt", "--merge", "code", "--threshold", "0.9"}, []string{"--merge code", "--method shortgpt"}},
		{[]string{"prune", "builtin:llama8", out, "--recover=false", "--recover-steps", "50"}, []string{"--recover-steps 50", "--recover false"}},
		{[]string{"prune", "builtin:llama8", out, "--recover", "--recover-budget", "-1s"}, []string{"--recover-budget -1s"}},
	} {
		code, stdout, stderr := runCLI(t, tt.args...)
		if code != 2 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q; want exit 2 and nothing on stdout", tt.args, code, stdout)
		}
		for _, w := range tt.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr %q does not name %s", tt.args, stderr, w)
			}
		}
	}
}

// TestPruneParamsFlags: the parameter target's flags, checked before the
// model is read: accepted combinations fail on the missing model (exit 1),
// refused ones exit 2 naming the flags at fault.
func TestPruneParamsFlags(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "missing.onnx"), filepath.Join(dir, "out.onnx")
	for _, tt := range []struct {
		args []string
		want []string // nil: accepted
	}{
		{[]string{"--params-ratio", "0.3"}, nil},
		{[]string{"--params-ratio", "0.3", "--width-ratio", "0"}, nil},
		{[]string{"--params-ratio", "0.3", "--width-ratio", "1", "--width-score", "wanda", "--width-alloc", "global"}, nil},
		{[]string{"--params-ratio", "0.3", "--layers", "6"}, []string{"--params-ratio 0.3", "--layers 6"}},
		{[]string{"--params-ratio", "0.3", "--prune-ratio", "0.25"}, []string{"--params-ratio 0.3", "--prune-ratio 0.25"}},
		{[]string{"--params-ratio", "0.3", "--threshold", "0.9"}, []string{"--params-ratio 0.3", "--threshold 0.9"}},
		{[]string{"--params-ratio", "1"}, []string{"--params-ratio 1"}},
		{[]string{"--params-ratio", "-0.1"}, []string{"--params-ratio -0.1"}},
		{[]string{"--width-ratio", "0.5"}, []string{"--width-ratio 0.5", "--params-ratio 0"}},
		{[]string{"--width-ratio", "0"}, []string{"--width-ratio 0", "--params-ratio 0"}},
		{[]string{"--width-score", "wanda"}, []string{"--width-score wanda", "--params-ratio 0"}},
		{[]string{"--width-alloc", "global"}, []string{"--width-alloc global", "--params-ratio 0"}},
		{[]string{"--params-ratio", "0.3", "--width-ratio", "1.5"}, []string{"--width-ratio 1.5"}},
		{[]string{"--params-ratio", "0.3", "--width-score", "magic"}, []string{"--width-score magic"}},
		{[]string{"--params-ratio", "0.3", "--width-alloc", "magic"}, []string{"--width-alloc magic"}},
		{[]string{"--params-ratio", "0.3", "--width-heads", "2"}, nil},
		{[]string{"--params-ratio", "0.3", "--width-heads", "0", "--width-ratio", "0"}, nil},
		{[]string{"--width-heads", "1"}, []string{"--width-heads 1", "--params-ratio 0"}},
		{[]string{"--params-ratio", "0.3", "--width-heads", "-1"}, []string{"--width-heads -1"}},
		{[]string{"--params-ratio", "0.3", "--width-heads", "1", "--width-ratio", "0"}, []string{"--width-heads 1", "--width-ratio 0"}},
	} {
		args := append(append([]string{"prune", "-q"}, tt.args...), in, out)
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, args...)
			if tt.want == nil {
				if code != 1 || !strings.Contains(stderr, "missing.onnx") {
					t.Errorf("exit %d, %q; want the options accepted (exit 1 on the missing model)", code, stderr)
				}
				return
			}
			if code != 2 {
				t.Errorf("exit %d, %q; want 2", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not name %s", stderr, w)
				}
			}
		})
	}
}
