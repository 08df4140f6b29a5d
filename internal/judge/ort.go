package judge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/onnxslm/onnxslm/npy"
)

// Timeout bounds one judge invocation.
var Timeout = 10 * time.Minute

// Runtime runs models in onnxruntime-node (the version pinned in
// tools/judges/package-lock.json) with 2 intra-op threads.
type Runtime struct {
	node   string // node executable
	script string // tools/judges/ort_run.js
	// Threads is the number of intra-op threads (default 2).
	Threads int
}

// ORT returns the onnxruntime judge. It skips the test when node or
// tools/judges/node_modules/onnxruntime-node is missing (fails it when CI=true).
func ORT(t testing.TB) *Runtime {
	t.Helper()
	return require(t, findORT)
}

func findORT() (*Runtime, string) {
	dir, ok := judgesDir()
	if !ok {
		return nil, "onnxruntime-node not installed: tools/judges not found; " + InstallHint
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "onnxruntime-node", "package.json")); err != nil {
		return nil, "onnxruntime-node not installed: " + InstallHint
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, "onnxruntime-node not installed: node not found on PATH; " + InstallHint
	}
	return &Runtime{node: node, script: filepath.Join(dir, "ort_run.js"), Threads: 2}, ""
}

// Version returns the installed onnxruntime-node version.
func (r *Runtime) Version() (string, error) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(r.script), "node_modules", "onnxruntime-node", "package.json"))
	if err != nil {
		return "", fmt.Errorf("judge: onnxruntime-node version: %w", err)
	}
	var p struct{ Version string }
	if err := json.Unmarshal(b, &p); err != nil {
		return "", fmt.Errorf("judge: onnxruntime-node package.json: %w", err)
	}
	return p.Version, nil
}

type ortRequest struct {
	Model   string     `json:"model"`
	Inputs  []ortInput `json:"inputs"`
	Outputs []string   `json:"outputs"`
	OutDir  string     `json:"out_dir"`
	Threads int        `json:"intra_op_threads"`
}

type ortInput struct {
	Name string `json:"name"`
	File string `json:"file"`
}

type ortResult struct {
	Version string     `json:"ort_version"`
	Outputs []ortInput `json:"outputs"`
}

// Run runs the model at modelPath (external data is found next to it) on
// inputs and returns the named outputs (every model output when outputs is
// empty). Errors carry onnxruntime's message.
func (r *Runtime) Run(modelPath string, inputs map[string]*npy.Array, outputs []string) (map[string]*npy.Array, error) {
	abs, err := filepath.Abs(modelPath)
	if err != nil {
		return nil, fmt.Errorf("judge: onnxruntime: %w", err)
	}
	tmp, err := os.MkdirTemp("", "onnxslm-ort-*")
	if err != nil {
		return nil, fmt.Errorf("judge: onnxruntime: %w", err)
	}
	defer os.RemoveAll(tmp)
	outDir := filepath.Join(tmp, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("judge: onnxruntime: %w", err)
	}
	req := ortRequest{Model: abs, Outputs: outputs, OutDir: outDir, Threads: r.Threads}
	if req.Outputs == nil {
		req.Outputs = []string{}
	}
	names := make([]string, 0, len(inputs))
	for name := range inputs {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		file := filepath.Join(tmp, fmt.Sprintf("in%d.npy", i))
		if err := npy.Write(file, inputs[name]); err != nil {
			return nil, fmt.Errorf("judge: onnxruntime: input %q: %w", name, err)
		}
		req.Inputs = append(req.Inputs, ortInput{Name: name, File: file})
	}
	reqFile := filepath.Join(tmp, "request.json")
	b, _ := json.Marshal(req)
	if err := os.WriteFile(reqFile, b, 0o644); err != nil {
		return nil, fmt.Errorf("judge: onnxruntime: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.node, r.script, reqFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			msg = fmt.Sprintf("timed out after %v", Timeout)
		}
		return nil, fmt.Errorf("judge: onnxruntime on %s: %s (%v)", modelPath, msg, err)
	}
	rb, err := os.ReadFile(filepath.Join(outDir, "result.json"))
	if err != nil {
		return nil, fmt.Errorf("judge: onnxruntime on %s: no result: %w", modelPath, err)
	}
	var res ortResult
	if err := json.Unmarshal(rb, &res); err != nil {
		return nil, fmt.Errorf("judge: onnxruntime on %s: result.json: %w", modelPath, err)
	}
	out := make(map[string]*npy.Array, len(res.Outputs))
	for _, o := range res.Outputs {
		a, err := npy.Read(filepath.Join(outDir, o.File))
		if err != nil {
			return nil, fmt.Errorf("judge: onnxruntime on %s: output %q: %w", modelPath, o.Name, err)
		}
		out[o.Name] = a
	}
	for _, name := range outputs {
		if out[name] == nil {
			return nil, fmt.Errorf("judge: onnxruntime on %s: output %q missing from the result", modelPath, name)
		}
	}
	return out, nil
}

// Script runs another judge script of tools/judges (such as ort_lm.js) with
// onnxruntime-node: request is written as JSON to a file given as the script's
// argument, and the JSON the script prints on stdout is decoded into answer.
func (r *Runtime) Script(name string, request, answer any) error {
	tmp, err := os.MkdirTemp("", "onnxslm-judge-*")
	if err != nil {
		return fmt.Errorf("judge: %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	reqFile := filepath.Join(tmp, "request.json")
	b, err := json.Marshal(request)
	if err != nil {
		return fmt.Errorf("judge: %s: %w", name, err)
	}
	if err := os.WriteFile(reqFile, b, 0o644); err != nil {
		return fmt.Errorf("judge: %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.node, filepath.Join(filepath.Dir(r.script), name), reqFile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			msg = fmt.Sprintf("timed out after %v", Timeout)
		}
		return fmt.Errorf("judge: %s: %s (%v)", name, msg, err)
	}
	if err := json.Unmarshal(stdout.Bytes(), answer); err != nil {
		return fmt.Errorf("judge: %s: answer: %w", name, err)
	}
	return nil
}
