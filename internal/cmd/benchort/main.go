// Command benchort compares the speed of onnxslm's Go runtime with
// onnxruntime's on one model and one batch of tokens (issue 3's benchmark).
//
//	go run ./internal/cmd/benchort -model ../shared/testmodels/llama8.onnx \
//	    -tokens ../shared/testmodels/tokens/calib_train_16x128.npy
//	go run ./internal/cmd/benchort -model /tmp/llama374m.onnx -batch 4 -seq 128 -seed 1
//
// Both engines run the same model on the same feeds (those lm.Feeds builds:
// input_ids plus attention_mask/position_ids where declared) with the same
// number of intra-op threads (-threads, default 2). onnxruntime runs in
// onnxruntime-node (tools/judges/ort_bench.js, installed by
// .ci/install-judges.sh) as a child process that stays alive; the runs of the
// two engines are interleaved (A B B A ...) so that both see the same machine
// load. Warm-up runs (-warmup, default 1 each: onnxruntime's first run and
// the Go runtime's first Run of a shape, which evaluates and caches the
// shape-only nodes) are excluded; then -reps runs of each are timed and the
// median is reported, as tokens per second of wall time and per second of
// process CPU time, with the ratio Go/onnxruntime. The logits of both engines
// are compared (max |diff| / max |ref|) so that the two measured the same
// computation.
//
// -engines go runs the Go runtime alone (no child process), for measuring the
// peak RSS of the Go side: run the built binary under /usr/bin/time -v, or read
// the peak_rss line this command prints (getrusage of this process only).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/onnxslm/onnxslm/internal/rusage"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokens"
)

type config struct {
	model, tokensFile string
	rows              int
	batch, seq        int
	seed              uint64
	threads           int
	warmup, reps      int
	engines           string
	ortSpin           bool
	judges            string
	jsonOut           bool
	cpuProfile        string
}

// Result is what -json prints.
type Result struct {
	Model         string   `json:"model"`
	Batch         int      `json:"batch"`
	SeqLen        int      `json:"seq_len"`
	Threads       int      `json:"threads"`
	Reps          int      `json:"reps"`
	Machine       string   `json:"machine"`
	LoadBefore    string   `json:"load_before"`
	LoadAfter     string   `json:"load_after"`
	WeightBytes   int64    `json:"weight_bytes"`
	Go            *Engine  `json:"go,omitempty"`
	ORT           *Engine  `json:"ort,omitempty"`
	Ratio         float64  `json:"ratio_wall,omitempty"`
	RatioBest     float64  `json:"ratio_best,omitempty"`
	RatioCPU      float64  `json:"ratio_cpu,omitempty"`
	LogitsRelDiff *float64 `json:"logits_rel_diff,omitempty"`
	PeakRSS       int64    `json:"go_peak_rss_bytes"`
	PeakRSSRatio  float64  `json:"go_peak_rss_over_weights"`
	Extra         []string `json:"notes,omitempty"`
}

// Engine holds one engine's timings.
type Engine struct {
	Name         string    `json:"name"`
	Version      string    `json:"version"`
	Seconds      []float64 `json:"seconds"`
	CPUSeconds   []float64 `json:"cpu_seconds"`
	Median       float64   `json:"median_seconds"`
	Best         float64   `json:"best_seconds"`
	TokensPerSec float64   `json:"tokens_per_second"`
	TokensPerCPU float64   `json:"tokens_per_cpu_second"`
}

func main() {
	var c config
	flag.StringVar(&c.model, "model", "", "ONNX model (external data next to it)")
	flag.StringVar(&c.tokensFile, "tokens", "", "token file (.npy or .txt); without it, random ids (-batch × -seq, -seed)")
	flag.IntVar(&c.rows, "rows", 0, "use the first ROWS rows of -tokens (0: all)")
	flag.IntVar(&c.batch, "batch", 4, "rows of random token ids (without -tokens)")
	flag.IntVar(&c.seq, "seq", 128, "length of the random rows (without -tokens)")
	flag.Uint64Var(&c.seed, "seed", 1, "seed of the random token ids")
	flag.IntVar(&c.threads, "threads", 2, "intra-op threads of each engine")
	flag.IntVar(&c.warmup, "warmup", 1, "untimed runs of each engine before timing")
	flag.IntVar(&c.reps, "reps", 7, "timed runs of each engine (the median is reported)")
	flag.StringVar(&c.engines, "engines", "go,ort", "engines to run: go, ort or go,ort")
	flag.BoolVar(&c.ortSpin, "ort-spin", true, "let onnxruntime's intra-op threads spin while waiting (its default); false sets session.intra_op.allow_spinning=0")
	flag.StringVar(&c.judges, "judges", "", "folder of ort_bench.js and its node_modules (default: tools/judges of this repository)")
	flag.BoolVar(&c.jsonOut, "json", false, "print one JSON object instead of text")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed Go runs to this file (go tool pprof)")
	flag.Parse()
	if err := run(c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchort:", err)
		os.Exit(1)
	}
}

func run(c config, w io.Writer) error {
	if c.model == "" {
		return errors.New("-model is required")
	}
	if c.reps < 1 || c.warmup < 0 || c.threads < 1 {
		return errors.New("-reps and -threads must be at least 1, -warmup at least 0")
	}
	useGo, useORT := false, false
	for _, e := range strings.Split(c.engines, ",") {
		switch strings.TrimSpace(e) {
		case "go":
			useGo = true
		case "ort":
			useORT = true
		default:
			return fmt.Errorf("-engines: unknown engine %q (want go, ort)", e)
		}
	}
	res := &Result{Model: c.model, Threads: c.threads, Reps: c.reps, Machine: machine(), LoadBefore: loadavg()}

	m, err := onnx.Load(c.model)
	if err != nil {
		return err
	}
	_, res.WeightBytes = onnx.Parameters(m.Proto)
	s, err := runtime.New(m.Proto, runtime.Options{Threads: c.threads})
	if err != nil {
		return fmt.Errorf("%s: %w", c.model, err)
	}
	rows, err := tokenRows(c, s)
	if err != nil {
		return err
	}
	res.Batch, res.SeqLen = len(rows), len(rows[0])
	feeds, err := lm.Feeds(s, rows)
	if err != nil {
		return err
	}
	logitsName, err := lm.LogitsName(s)
	if err != nil {
		return err
	}
	fetch := []string{logitsName}

	var ort *ortProc
	tmp := ""
	if useORT {
		tmp, err = os.MkdirTemp("", "benchort")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if ort, err = startORT(c, tmp, feeds, fetch); err != nil {
			return err
		}
		defer ort.stop()
		res.ORT = &Engine{Name: "onnxruntime-node", Version: ort.version}
		if !c.ortSpin {
			res.ORT.Name = "onnxruntime (no spin)"
		}
	}
	if useGo {
		res.Go = &Engine{Name: "onnxslm runtime", Version: goruntime.Version()}
	}

	var goLogits *runtime.Tensor
	goRun := func() (float64, float64, error) {
		c0, w0 := rusage.CPU(), time.Now()
		out, err := s.Run(feeds, fetch)
		if err != nil {
			return 0, 0, err
		}
		wall, cpu := time.Since(w0).Seconds(), (rusage.CPU() - c0).Seconds()
		if goLogits == nil {
			goLogits = out[logitsName] // kept for the comparison with onnxruntime
		} else {
			// Done with this batch: its logits go back to the session (as a
			// caller computing the loss would), not to the garbage collector.
			s.Recycle(out[logitsName])
		}
		return wall, cpu, nil
	}
	ortRun := func() (float64, float64, error) {
		ms, cpu, err := ort.run()
		return ms / 1000, cpu / 1000, err
	}
	// Warm-up, then interleaved timed runs: A B, B A, A B, ...
	for range c.warmup {
		if useGo {
			if _, _, err := goRun(); err != nil {
				return err
			}
		}
		if useORT {
			if _, _, err := ortRun(); err != nil {
				return err
			}
		}
	}
	// The profile covers the timed runs; this process is idle while
	// onnxruntime runs, so its samples are the Go runtime's.
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	type timed struct {
		on  bool
		run func() (wall, cpu float64, err error)
		e   *Engine
	}
	engines := []timed{{useGo, goRun, res.Go}, {useORT, ortRun, res.ORT}}
	for i := range c.reps {
		for j := range engines {
			t := engines[(i+j)%2] // interleaved: Go first on even runs, onnxruntime on odd
			if !t.on {
				continue
			}
			wall, cpu, err := t.run()
			if err != nil {
				return err
			}
			t.e.Seconds = append(t.e.Seconds, wall)
			t.e.CPUSeconds = append(t.e.CPUSeconds, cpu)
		}
	}
	ntok := float64(res.Batch * res.SeqLen)
	for _, e := range []*Engine{res.Go, res.ORT} {
		if e == nil {
			continue
		}
		e.Median = median(e.Seconds)
		e.Best = slices.Min(e.Seconds)
		e.TokensPerSec = ntok / e.Median
		e.TokensPerCPU = ntok / median(e.CPUSeconds)
	}
	if res.Go != nil && res.ORT != nil {
		res.Ratio = res.Go.TokensPerSec / res.ORT.TokensPerSec
		res.RatioBest = res.ORT.Best / res.Go.Best
		res.RatioCPU = res.Go.TokensPerCPU / res.ORT.TokensPerCPU
	}
	res.PeakRSS = rusage.PeakRSS()
	if res.WeightBytes > 0 {
		res.PeakRSSRatio = float64(res.PeakRSS) / float64(res.WeightBytes)
	}
	if useGo && useORT && goLogits == nil && c.warmup+c.reps > 0 {
		return errors.New("internal error: no Go logits")
	}
	if useGo && useORT {
		d, err := compareLogits(goLogits, filepath.Join(tmp, "ort_logits.npy"))
		if err != nil {
			return err
		}
		res.LogitsRelDiff = &d
		if d > 1e-3 {
			return fmt.Errorf("the engines disagree: logits max|diff|/max|ref| = %.3g", d)
		}
	}
	res.LoadAfter = loadavg()
	if useGo && useORT {
		res.Extra = append(res.Extra, "go_peak_rss includes the ORT logits read back for the comparison; use -engines go for the Go side alone")
	}
	if c.jsonOut {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printText(w, res)
	return nil
}

func printText(w io.Writer, r *Result) {
	fmt.Fprintf(w, "model      %s (%.1f MB of weights)\n", r.Model, float64(r.WeightBytes)/1e6)
	fmt.Fprintf(w, "batch      %d×%d tokens, %d threads per engine, median of %d runs\n", r.Batch, r.SeqLen, r.Threads, r.Reps)
	fmt.Fprintf(w, "machine    %s\n", r.Machine)
	fmt.Fprintf(w, "load avg   before %s, after %s\n", r.LoadBefore, r.LoadAfter)
	for _, e := range []*Engine{r.Go, r.ORT} {
		if e == nil {
			continue
		}
		fmt.Fprintf(w, "%-17s %-7s median %7.1f ms  %7.0f tokens/s  %7.0f tokens/cpu-s  best %7.1f ms  runs(ms) %s\n",
			e.Name, e.Version, e.Median*1000, e.TokensPerSec, e.TokensPerCPU, e.Best*1000, msList(e.Seconds))
	}
	if r.Go != nil && r.ORT != nil {
		fmt.Fprintf(w, "ratio      %.3f (median tokens/s, onnxslm / onnxruntime); best runs %.3f; per CPU-second %.3f\n", r.Ratio, r.RatioBest, r.RatioCPU)
	}
	if r.LogitsRelDiff != nil {
		fmt.Fprintf(w, "logits     max|diff|/max|ref| = %.2g\n", *r.LogitsRelDiff)
	}
	fmt.Fprintf(w, "peak_rss   %.1f MB = %.2f× the weights (this process: getrusage maxrss)\n", float64(r.PeakRSS)/1e6, r.PeakRSSRatio)
	for _, n := range r.Extra {
		fmt.Fprintf(w, "note       %s\n", n)
	}
}

func msList(s []float64) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprintf("%.0f", v*1000)
	}
	return strings.Join(parts, " ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// tokenRows reads -tokens (first -rows rows) or makes -batch × -seq random
// ids below the model's vocabulary, seeded by -seed.
func tokenRows(c config, s *runtime.Session) ([][]int64, error) {
	vocab, err := lm.Vocab(s)
	if err != nil {
		return nil, err
	}
	if c.tokensFile != "" {
		set, err := tokens.Read(c.tokensFile)
		if err != nil {
			return nil, err
		}
		rows := set.Rows
		if c.rows > 0 && c.rows < len(rows) {
			rows = rows[:c.rows]
		}
		if err := lm.CheckTokens(rows, vocab); err != nil {
			return nil, fmt.Errorf("%s: %w", c.tokensFile, err)
		}
		return rows, nil
	}
	if c.batch < 1 || c.seq < 1 {
		return nil, errors.New("-batch and -seq must be at least 1")
	}
	rng := rand.New(rand.NewPCG(c.seed, 0x6f6e6e78736c6d))
	rows := make([][]int64, c.batch)
	for i := range rows {
		rows[i] = make([]int64, c.seq)
		for j := range rows[i] {
			rows[i][j] = rng.Int64N(int64(vocab))
		}
	}
	return rows, nil
}

// ortProc is a running tools/judges/ort_bench.js.
type ortProc struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	version string
}

func startORT(c config, tmp string, feeds map[string]*runtime.Tensor, fetch []string) (*ortProc, error) {
	judges := c.judges
	if judges == "" {
		root, err := testenv.Root()
		if err != nil {
			return nil, fmt.Errorf("%w: pass -judges", err)
		}
		judges = filepath.Join(root, "tools", "judges")
	}
	script := filepath.Join(judges, "ort_bench.js")
	if _, err := os.Stat(filepath.Join(judges, "node_modules", "onnxruntime-node")); err != nil {
		return nil, fmt.Errorf("onnxruntime-node is not installed in %s (run .ci/install-judges.sh): %w", judges, err)
	}
	type input struct {
		Name string `json:"name"`
		File string `json:"file"`
	}
	req := struct {
		Model   string   `json:"model"`
		Inputs  []input  `json:"inputs"`
		Outputs []string `json:"outputs"`
		Threads int      `json:"intra_op_threads"`
		Spin    bool     `json:"allow_spinning"`
		OutFile string   `json:"out_file"`
	}{Outputs: fetch, Threads: c.threads, Spin: c.ortSpin, OutFile: filepath.Join(tmp, "ort_logits.npy")}
	var err error
	if req.Model, err = filepath.Abs(c.model); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(feeds))
	for n := range feeds {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		t := feeds[n]
		a, err := npy.New(t.Shape(), t.Data())
		if err != nil {
			return nil, fmt.Errorf("feed %q: %w", n, err)
		}
		f := filepath.Join(tmp, fmt.Sprintf("in%d.npy", i))
		if err := npy.Write(f, a); err != nil {
			return nil, err
		}
		req.Inputs = append(req.Inputs, input{Name: n, File: f})
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	reqFile := filepath.Join(tmp, "request.json")
	if err := os.WriteFile(reqFile, b, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("node", script, reqFile)
	cmd.Dir = judges
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s: %w", script, err)
	}
	p := &ortProc{cmd: cmd, in: in, out: bufio.NewReader(out)}
	var ready struct {
		Ready   bool   `json:"ready"`
		Version string `json:"ort_version"`
	}
	if err := p.read(&ready); err != nil || !ready.Ready {
		p.stop()
		return nil, fmt.Errorf("%s did not start: %v", script, err)
	}
	p.version = ready.Version
	return p, nil
}

func (p *ortProc) read(v any) error {
	line, err := p.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("ort_bench.js: %w", err)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("ort_bench.js: %q: %w", line, err)
	}
	return nil
}

// run times one onnxruntime run (milliseconds of wall and CPU time).
func (p *ortProc) run() (float64, float64, error) {
	if _, err := io.WriteString(p.in, "run 1\n"); err != nil {
		return 0, 0, fmt.Errorf("ort_bench.js: %w", err)
	}
	var r struct {
		MS  []float64 `json:"ms"`
		CPU []float64 `json:"cpu_ms"`
	}
	if err := p.read(&r); err != nil {
		return 0, 0, err
	}
	if len(r.MS) != 1 || len(r.CPU) != 1 {
		return 0, 0, errors.New("ort_bench.js: malformed answer to run")
	}
	return r.MS[0], r.CPU[0], nil
}

func (p *ortProc) stop() {
	io.WriteString(p.in, "quit\n")
	p.in.Close()
	p.cmd.Wait()
}

// compareLogits returns max|go-ort| / max|ort|.
func compareLogits(got *runtime.Tensor, file string) (float64, error) {
	a, err := npy.Read(file)
	if err != nil {
		return 0, err
	}
	ref, err := a.Float32s()
	if err != nil {
		return 0, err
	}
	g := got.Float32Data()
	if !slices.Equal(a.Shape, got.Shape()) || len(g) != len(ref) {
		return 0, fmt.Errorf("logits: onnxruntime gives shape %v, the Go runtime %v", a.Shape, got.Shape())
	}
	maxDiff, maxRef := stats.MaxAbsDiff(g, ref), stats.MaxAbs(ref)
	if maxRef == 0 {
		return maxDiff, nil
	}
	return maxDiff / maxRef, nil
}

func machine() string {
	model, family, avx512 := "", "", false
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch {
			case k == "model name" && model == "":
				model = v
			case k == "cpu family" && family == "":
				family = "family " + v
			case k == "flags":
				avx512 = avx512 || strings.Contains(" "+v+" ", " avx512f ")
			}
		}
	}
	simd := "AVX2"
	if avx512 {
		simd = "AVX-512"
	}
	return fmt.Sprintf("%s (%s, %s), %d CPUs, %s %s/%s", model, family, simd, goruntime.NumCPU(), goruntime.Version(), goruntime.GOOS, goruntime.GOARCH)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
