//go:build linux

package prune

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/runtime"
)

// budgetChild makes the test binary the child process of
// TestPruneWithinMemoryBudget: "MODE,MODEL", MODE one of load (load the model
// and stop: the process's own baseline), pager, nopager.
const budgetChild = "ONNXSLM_BUDGET_CHILD"

// TestPruneWithinMemoryBudget: a model whose weights (float16, external data,
// memory-mapped by onnx.Load) exceed a memory budget prunes within it: with
// a runtime.Pager dropping the mapped pages as runs read them (the
// runtime's check run, the layer-major calibration, the result's score)
// and the output saved through it, the child process's peak resident set
// (VmHWM: mapped pages count, as /usr/bin/time -v counts them) stays
// within half the weight file's size above what the process holds once the
// model is loaded (the Go runtime and the test binary's code). The same
// prune without the pager is the control: it holds the whole file. The
// prune is ShortGPT's, so that the test takes a second: the search's own
// heap (candidate layers, repair fits) is bounded by the Go memory limit,
// not by the pager, and is measured at scale in docs/SCALE.md.
func TestPruneWithinMemoryBudget(t *testing.T) {
	if spec := os.Getenv(budgetChild); spec != "" {
		budgetChildRun(t, spec)
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	// 16 layers, d 256, FFN 2048, a byte vocabulary: 1.8 M parameters a
	// layer, 59 MB of float16 weights, nearly all in the layers.
	cfg := modelgen.Config{Arch: modelgen.Llama, Layers: 16, Hidden: 256, Heads: 4, FFN: 2048, Float16: true, Seed: 5}
	if err := modelgen.Stream(cfg, path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path + ".data")
	if err != nil {
		t.Fatal(err)
	}
	weights := st.Size()
	budget := weights / 2
	peak := func(mode string) int64 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPruneWithinMemoryBudget$")
		cmd.Env = append(os.Environ(), budgetChild+"="+mode+","+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child (%s): %v\n%s", mode, err, out)
		}
		_, after, ok := strings.Cut(string(out), hwmLine)
		kb, _, _ := strings.Cut(after, "\n")
		n, err := strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
		if !ok || err != nil {
			t.Fatalf("child (%s) said no peak: %v\n%s", mode, err, out)
		}
		return n << 10
	}
	base := peak("load")
	with, without := peak("pager")-base, peak("nopager")-base
	t.Logf("weights %.1f MB, budget %.1f MB; above the loaded process's %.1f MB: peak %.1f MB with the pager, %.1f MB without",
		mb(weights), mb(budget), mb(base), mb(with), mb(without))
	if with > budget {
		t.Errorf("with the pager: %.1f MB above the loaded process, over the budget of %.1f MB (weights %.1f MB)", mb(with), mb(budget), mb(weights))
	}
	if without < weights {
		t.Errorf("without the pager: %.1f MB above the loaded process, below the weights' %.1f MB: the control shows nothing", mb(without), mb(weights))
	}
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// hwmLine starts the child's report of its peak resident set in KiB: the
// kernel's VmHWM, which, unlike getrusage's maxrss, starts afresh at exec
// (maxrss keeps the forking parent's size).
const hwmLine = "child peak KiB: "

// reportPeak prints this process's peak resident set (mapped pages
// included) for the parent.
func reportPeak(t *testing.T) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Printf("%s%s\n", hwmLine, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
}

// budgetChildRun is the child: load the model (mapped), then, unless the
// mode is load, prune it 16 → 12 layers (ShortGPT) on 4 random
// rows of 16 tokens and save it with external data.
func budgetChildRun(t *testing.T, spec string) {
	mode, path, _ := strings.Cut(spec, ",")
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reportPeak(t)
	if mode == "load" {
		return
	}
	opts := Options{Method: ShortGPT, Calibration: randomRows(4, 16, 9), Layers: 12, Runtime: runtime.Options{Threads: 1}}
	var pg *runtime.Pager
	if mode == "pager" {
		pg = runtime.NewPager(func() { _ = m.ReleasePages() }, 1<<20)
		opts.Runtime.Pager = pg
		debug.SetMemoryLimit(24 << 20)
	}
	out, err := Run(context.Background(), m.Proto, opts)
	if err != nil {
		t.Fatal(err)
	}
	if out.Report.LayersAfter != 12 {
		t.Fatalf("%d layers after, want 12", out.Report.LayersAfter)
	}
	dst := filepath.Join(filepath.Dir(path), "out-"+mode+".onnx")
	if err := onnx.Save(out.Model, dst, onnx.SaveOptions{External: onnx.ExternalAlways, Wrote: pg.Read}); err != nil {
		t.Fatal(err)
	}
}
