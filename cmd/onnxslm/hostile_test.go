package main

// Hostile input, end to end through Main: every bad model and token file that
// internal/hostile builds, given to every command that reads it, must give exit
// status 1 with a one-line message naming the file and what is at fault, leave
// no output file, leave the input files as they were, and not allocate what
// the file merely claims. See testdata/hostile/README.md for the catalogue.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/hostile"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/encoding/protowire"
)

// hostileCmd is one way of giving a hostile input to onnxslm.
type hostileCmd struct {
	name string
	// args builds the command line from the input and a fresh OUT path.
	args func(in, out string) []string
	// writes reports whether the command would write OUT.
	writes bool
}

// modelCmds are the commands that read a model given as IN; good is a valid
// token file for the base model.
func modelCmds(good string) []hostileCmd {
	return []hostileCmd{
		{"inspect", func(in, _ string) []string { return []string{"inspect", in} }, false},
		{"convert", func(in, out string) []string { return []string{"convert", in, out} }, true},
		{"eval", func(in, _ string) []string { return []string{"eval", in, "--tokens", good} }, false},
		{"prune", func(in, out string) []string { return []string{"prune", "-q", in, out} }, true},
	}
}

// tokenCmds read a token file given as IN against the built-in model (vocab 256).
var tokenCmds = []hostileCmd{
	{"eval", func(in, _ string) []string { return []string{"eval", "builtin:llama8", "--tokens", in} }, false},
	{"prune", func(in, out string) []string { return []string{"prune", "-q", "builtin:llama8", out, "--calib", in} }, true},
}

// runMainSafe runs Main in-process like runCLI, turning a panic into a test
// failure instead of a crash of the whole test binary.
func runMainSafe(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("onnxslm %s: panic: %v", strings.Join(args, " "), r)
			code, stdout, stderr = -1, out.String(), errb.String()
		}
	}()
	code = Main(context.Background(), args, &stdio{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

// treeHashes returns a fingerprint of every entry under dir: a file's sha256,
// a symlink's target, "dir" for a folder. Symlinks are not followed.
func treeHashes(t *testing.T, dir string) map[string]string {
	t.Helper()
	h := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h[rel] = "-> " + target
		case d.IsDir():
			h[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			h[rel] = hex.EncodeToString(sum[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// diffTrees lists what changed between two treeHashes.
func diffTrees(before, after map[string]string) []string {
	var d []string
	for k, v := range before {
		switch w, ok := after[k]; {
		case !ok:
			d = append(d, "removed "+k)
		case w != v:
			d = append(d, "changed "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	slices.Sort(d)
	return d
}

// checkRefusal asserts the shape of a refusal: exit 1, nothing on stdout, one
// line on stderr that starts with "onnxslm CMD: " and names the file and
// every one of names (an entry "a | b" accepts either).
func checkRefusal(t *testing.T, cmd string, code int, stdout, stderr, file string, names []string) {
	t.Helper()
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr %q", code, stderr)
		return
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	msg := strings.TrimSuffix(stderr, "\n")
	if strings.Contains(msg, "\n") || msg == "" {
		t.Errorf("message is not one line: %q", stderr)
	}
	if want := "onnxslm " + cmd + ": "; !strings.HasPrefix(msg, want) {
		t.Errorf("message %q does not start with %q", msg, want)
	}
	if !strings.Contains(msg, file) {
		t.Errorf("message %q does not name the file %s", msg, file)
	}
	for _, n := range names {
		alts := strings.Split(n, " | ")
		if !slices.ContainsFunc(alts, func(a string) bool { return strings.Contains(msg, a) }) {
			t.Errorf("message %q does not name %q", msg, n)
		}
	}
	if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
		t.Errorf("message looks like a crash: %q", msg)
	}
}

// goodTokens writes a valid token file for a vocabulary of vocab.
func goodTokens(t *testing.T, dir string, vocab, rows, cols int) string {
	t.Helper()
	var b strings.Builder
	for r := range rows {
		for c := range cols {
			if c > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprint(&b, (r*31+c*7+1)%vocab)
		}
		b.WriteByte('\n')
	}
	p := filepath.Join(dir, fmt.Sprintf("good_%d.txt", vocab))
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func hostileCases(t *testing.T) []hostile.Case {
	t.Helper()
	cs, err := hostile.All()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestHostileInput gives every hostile case to every command that reads it.
// File and Tokens cases must be refused by all of them; Graph cases by the
// commands that run the graph (eval, prune), while inspect and convert, which
// only describe or re-save a model, may accept them: convert must then write
// the model back unchanged.
func TestHostileInput(t *testing.T) {
	work := t.TempDir()
	good := goodTokens(t, work, hostile.Vocab, 2, 16)
	for _, c := range hostileCases(t) {
		cmds := modelCmds(good)
		if c.Stage == hostile.Tokens {
			cmds = tokenCmds
		}
		for _, cmd := range cmds {
			t.Run(c.Name+"/"+cmd.name, func(t *testing.T) {
				dir := t.TempDir()
				in, err := c.Write(dir)
				if err != nil {
					t.Fatal(err)
				}
				outDir := t.TempDir()
				out := filepath.Join(outDir, "out.onnx")
				before := treeHashes(t, dir)
				code, stdout, stderr := runMainSafe(t, cmd.args(in, out)...)
				if d := diffTrees(before, treeHashes(t, dir)); len(d) > 0 {
					t.Errorf("the input folder changed: %v", d)
				}
				mustRefuse := c.Stage != hostile.Graph || cmd.name == "eval" || cmd.name == "prune"
				if !mustRefuse && code == 0 {
					if cmd.name == "convert" {
						checkFaithful(t, in, out)
					}
					return
				}
				if !mustRefuse && code != 1 {
					t.Errorf("exit %d, want 0 or 1; stderr %q", code, stderr)
					return
				}
				checkRefusal(t, cmd.name, code, stdout, stderr, in, c.Names)
				if files := testenv.DirNames(t, outDir); len(files) > 0 {
					t.Errorf("output folder holds %v after a refusal, want nothing", files)
				}
			})
		}
	}
}

// checkFaithful: convert wrote OUT holding the same model as IN (read without
// any checking, as a plain protobuf message).
func checkFaithful(t *testing.T, in, out string) {
	t.Helper()
	if !proto.Equal(testenv.ReadModelProto(t, in), testenv.ReadModelProto(t, out)) {
		t.Errorf("convert accepted the model but wrote a different one")
	}
}

// TestHostileMemoryBounded: reading an input that claims far more bytes than it
// holds allocates about what it holds, not what it claims. TotalAlloc counts
// every allocation, so a loader that made the claimed buffer (and let the
// kernel back it lazily) is caught even though no page was touched.
func TestHostileMemoryBounded(t *testing.T) {
	const budget = 96 << 20 // far below every claim (>= 1 GiB); the inputs are < 8 MiB
	work := t.TempDir()
	good := goodTokens(t, work, hostile.Vocab, 2, 16)
	n := 0
	for _, c := range hostileCases(t) {
		if c.Claims == 0 {
			continue
		}
		if c.Claims < 8*budget {
			t.Fatalf("%s claims %d bytes: too close to the budget %d to tell", c.Name, c.Claims, budget)
		}
		cmds := modelCmds(good)
		if c.Stage == hostile.Tokens {
			cmds = tokenCmds
		}
		for _, cmd := range cmds {
			n++
			dir := t.TempDir()
			in, err := c.Write(dir)
			if err != nil {
				t.Fatal(err)
			}
			args := cmd.args(in, filepath.Join(t.TempDir(), "out.onnx"))
			var ms goruntime.MemStats
			goruntime.GC()
			goruntime.ReadMemStats(&ms)
			start := ms.TotalAlloc
			code, _, stderr := runMainSafe(t, args...)
			goruntime.ReadMemStats(&ms)
			if got := ms.TotalAlloc - start; got > budget {
				t.Errorf("%s/%s: allocated %d MiB for an input claiming %d MiB, want under %d MiB", c.Name, cmd.name, got>>20, c.Claims>>20, budget>>20)
			}
			if code != 1 {
				t.Errorf("%s/%s: exit %d, want 1: %s", c.Name, cmd.name, code, stderr)
			}
		}
	}
	if n == 0 {
		t.Fatal("no hostile case claims memory: the test tests nothing")
	}
}

// TestHostileRuntimeAllocation: a tiny model whose graph computes a huge tensor
// (ConstantOfShape of [2^18, 2^18] float32, 256 GiB) must be refused with an
// error naming the node, not crash the process with a fatal out-of-memory.
// The CLI runs as a subprocess under a 3 GiB address-space limit, so a failing
// runtime cannot hurt the machine.
func TestHostileRuntimeAllocation(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to run the CLI under ulimit -v")
	}
	dir := t.TempDir()
	base, err := hostile.Base()
	if err != nil {
		t.Fatal(err)
	}
	m := proto.Clone(base).(*pb.ModelProto)
	var node string
	for _, n := range m.Graph.Node {
		if n.GetOpType() == "ConstantOfShape" {
			m.Graph.Initializer = append(m.Graph.Initializer, onnx.NewInt64("bomb_shape", []int64{2}, []int64{1 << 18, 1 << 18}))
			n.Input[0] = "bomb_shape"
			node = n.GetName()
			break
		}
	}
	if node == "" {
		t.Fatal("base model has no ConstantOfShape")
	}
	in := testmodel.Write(t, filepath.Join(dir, "bomb.onnx"), m)
	good := goodTokens(t, dir, hostile.Vocab, 1, 8)
	outDir := t.TempDir()
	for _, args := range [][]string{
		{"eval", in, "--tokens", good},
		{"prune", "-q", in, filepath.Join(outDir, "out.onnx"), "--calib", good},
	} {
		t.Run(args[0], func(t *testing.T) {
			code, stdout, stderr := runSubprocess(t, sh, "ulimit -v 3145728", nil, args...)
			if strings.Contains(stderr, "fatal error") || strings.Contains(stderr, "goroutine ") {
				first, _, _ := strings.Cut(stderr, "\n")
				t.Fatalf("onnxslm %s crashed (exit %d): %s", args[0], code, first)
			}
			checkRefusal(t, args[0], code, stdout, stderr, in, []string{node})
			if files := testenv.DirNames(t, outDir); len(files) > 0 {
				t.Errorf("output folder holds %v after a refusal", files)
			}
		})
	}
}

// TestPruneRefusesNonDecoder: prune on the negative fixtures (not a stack of
// identical decoder layers) says which layer differs, or why there are none.
func TestPruneRefusesNonDecoder(t *testing.T) {
	models := filepath.Join(testenv.RepoRoot(t), "testdata", "models")
	n := 0
	for _, f := range modelgen.Fixtures() {
		if !f.Negative {
			continue
		}
		n++
		t.Run(f.Name, func(t *testing.T) {
			in := filepath.Join(models, f.Name+".onnx")
			vocab := f.Config.Vocab
			if vocab == 0 {
				vocab = 256
			}
			calib := goodTokens(t, t.TempDir(), vocab, 2, 16)
			var want []string
			switch {
			case f.Config.Odd.Kind != "":
				want = []string{fmt.Sprintf("layer %d", f.Config.Odd.Layer)}
			case f.Config.Arch == modelgen.EncDec:
				want = []string{"encoder"}
			default:
				want = []string{"residual"}
			}
			outDir := t.TempDir()
			before := treeHashes(t, models)
			code, stdout, stderr := runMainSafe(t, "prune", "-q", in, filepath.Join(outDir, "out.onnx"), "--calib", calib)
			checkRefusal(t, "prune", code, stdout, stderr, in, want)
			if files := testenv.DirNames(t, outDir); len(files) > 0 {
				t.Errorf("output folder holds %v after a refusal", files)
			}
			if d := diffTrees(before, treeHashes(t, models)); len(d) > 0 {
				t.Errorf("testdata/models changed: %v", d)
			}
		})
	}
	if n == 0 {
		t.Fatal("modelgen lists no negative fixture")
	}
}

// TestRefuseToOverwriteInputs: no way of naming an output (OUT, its data file,
// the report) may overwrite an input file: the model, through a symlink or a
// hard link, or its external data. Each is refused with exit status 1, and
// every input file keeps its bytes.
func TestRefuseToOverwriteInputs(t *testing.T) {
	type setup struct {
		dir, in, inData, link, hard, linkIn string
	}
	prepare := func(t *testing.T) setup {
		dir := t.TempDir()
		s := setup{dir: dir, in: filepath.Join(dir, "in.onnx")}
		s.inData = s.in + ".data"
		base, err := hostile.Base()
		if err != nil {
			t.Fatal(err)
		}
		if err := onnx.Save(base, s.in, onnx.SaveOptions{External: onnx.ExternalAlways}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(s.inData); err != nil {
			t.Fatalf("base model saved without external data: %v", err)
		}
		s.link = filepath.Join(dir, "link.onnx")
		s.hard = filepath.Join(dir, "hard.onnx")
		s.linkIn = filepath.Join(dir, "linkin.onnx")
		for _, err := range []error{os.Symlink("in.onnx", s.link), os.Link(s.in, s.hard), os.Symlink(s.in, s.linkIn)} {
			if err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	cases := []struct {
		name string
		args func(s setup) []string
		want string
	}{
		{"prune OUT == IN", func(s setup) []string { return []string{"prune", "-q", s.in, s.in} }, "refusing"},
		{"prune OUT == ./IN", func(s setup) []string {
			return []string{"prune", "-q", s.in, filepath.Join(s.dir, ".", "x", "..", "in.onnx")}
		}, "refusing"},
		{"prune OUT a symlink to IN", func(s setup) []string { return []string{"prune", "-q", s.in, s.link} }, "refusing"},
		{"prune IN a symlink to OUT", func(s setup) []string { return []string{"prune", "-q", s.linkIn, s.in} }, "refusing"},
		{"prune OUT a hard link to IN", func(s setup) []string { return []string{"prune", "-q", s.in, s.hard} }, "refusing"},
		{"prune OUT == IN's data file", func(s setup) []string { return []string{"prune", "-q", s.in, s.inData} }, "refusing"},
		{"prune --report IN", func(s setup) []string {
			return []string{"prune", "-q", s.in, filepath.Join(s.dir, "out.onnx"), "--report", s.in}
		}, "in.onnx"},
		{"prune --report IN's data file", func(s setup) []string {
			return []string{"prune", "-q", s.in, filepath.Join(s.dir, "out.onnx"), "--report", s.inData}
		}, "in.onnx.data"},
		{"prune --report OUT", func(s setup) []string {
			out := filepath.Join(s.dir, "out.onnx")
			return []string{"prune", "-q", s.in, out, "--report", out}
		}, "out.onnx"},
		{"convert OUT == IN", func(s setup) []string { return []string{"convert", s.in, s.in} }, "refusing"},
		{"convert OUT a symlink to IN", func(s setup) []string { return []string{"convert", s.in, s.link} }, "refusing"},
		{"convert IN a symlink to OUT", func(s setup) []string { return []string{"convert", s.linkIn, s.in} }, "refusing"},
		{"convert OUT == IN's data file", func(s setup) []string { return []string{"convert", s.in, s.inData} }, "refusing"},
		{"convert --data-file IN", func(s setup) []string {
			return []string{"convert", "--external-data", "--data-file", "in.onnx", s.in, filepath.Join(s.dir, "out.onnx")}
		}, "refusing"},
		{"convert --data-file IN's data", func(s setup) []string {
			return []string{"convert", "--external-data", "--data-file", "in.onnx.data", s.in, filepath.Join(s.dir, "out.onnx")}
		}, "refusing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := prepare(t)
			before := treeHashes(t, s.dir)
			args := c.args(s)
			code, _, stderr := runMainSafe(t, args...)
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 naming %q", code, stderr, c.want)
			}
			if msg := strings.TrimSuffix(stderr, "\n"); strings.Contains(msg, "\n") {
				t.Errorf("message is not one line: %q", stderr)
			}
			after := treeHashes(t, s.dir)
			for _, f := range []string{"in.onnx", "in.onnx.data"} {
				if before[f] != after[f] {
					t.Errorf("input file %s was overwritten", f)
				}
			}
			if d := diffTrees(before, after); len(d) > 0 {
				t.Errorf("a refused command changed the folder: %v", d)
			}
		})
	}
}

// TestFailedPruneLeavesNoOutput: when prune fails after its work (the report
// cannot be written), no OUT model is left behind: a failed command writes
// nothing.
func TestFailedPruneLeavesNoOutput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.onnx")
	report := filepath.Join(dir, "no", "such", "folder", "report.json")
	code, _, stderr := runMainSafe(t, "prune", "-q", "builtin:llama8", out, "--report", report)
	if code != 1 || !strings.Contains(stderr, "report.json") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming report.json", code, stderr)
	}
	if strings.Contains(stderr, ".tmp") {
		t.Errorf("message names a temporary file: %q", stderr)
	}
	if files := testenv.DirNames(t, dir); len(files) > 0 {
		t.Errorf("folder holds %v after a failed prune, want nothing", files)
	}
}

// TestHostileUsage: usage mistakes exit 2 before reading anything and write
// nothing.
func TestHostileUsage(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.onnx")
	cases := [][]string{
		{"prune"},
		{"prune", "builtin:llama8"},
		{"prune", "builtin:llama8", out, "extra"},
		{"prune", "--threshold", "-0.5", "builtin:llama8", out},
		{"prune", "--prune-ratio", "1.5", "builtin:llama8", out},
		{"prune", "--layers", "-3", "builtin:llama8", out},
		{"prune", "--batch", "-1", "builtin:llama8", out},
		{"prune", "--threads", "-1", "builtin:llama8", out},
		{"prune", "--threshold", "NaN", "builtin:llama8", out},
		{"prune", "--prune-ratio", "NaN", "builtin:llama8", out},
		{"prune", "--threshold", "+Inf", "builtin:llama8", out},
		{"prune", "--calib", "a.txt", "--calib-text", "b.txt", "builtin:llama8", out},
		{"convert", "builtin:llama8"},
		{"convert", "--inline", "--external-data", "builtin:llama8", out},
		{"eval", "builtin:llama8"},
		{"eval", "--tokens", "x.txt"},
		{"eval", "--batch", "-1", "--tokens", "x.txt", "builtin:llama8"},
		{"inspect"},
		{"--no-such-flag", "builtin:llama8", out},
	}
	for _, args := range cases {
		code, stdout, stderr := runMainSafe(t, args...)
		if code != 2 {
			t.Errorf("onnxslm %s: exit %d, want 2; stderr %q", strings.Join(args, " "), code, stderr)
		}
		if stdout != "" {
			t.Errorf("onnxslm %s: stdout %q, want nothing", strings.Join(args, " "), stdout)
		}
		if files := testenv.DirNames(t, dir); len(files) > 0 {
			t.Errorf("onnxslm %s: wrote %v", strings.Join(args, " "), files)
			for _, f := range files {
				os.Remove(filepath.Join(dir, f))
			}
		}
	}
}

// deepModel returns a model whose graph nests levels subgraphs (graph → node →
// attribute g → graph …), written straight on the wire in linear time.
func deepModel(levels int) []byte {
	// sizes[k] is the size of the graph message at depth k from the inside.
	sizes := make([]int, levels+1)
	attr := func(inner int) int { return 1 + protowire.SizeVarint(uint64(inner)) + inner }
	node := func(inner int) int { return 1 + protowire.SizeVarint(uint64(attr(inner))) + attr(inner) }
	for k := 1; k <= levels; k++ {
		n := node(sizes[k-1])
		sizes[k] = 1 + protowire.SizeVarint(uint64(n)) + n
	}
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType) // ir_version 8
	m = protowire.AppendVarint(m, 8)
	m = protowire.AppendTag(m, 8, protowire.BytesType) // opset_import {version 17}
	m = protowire.AppendBytes(m, protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 17))
	m = protowire.AppendTag(m, 7, protowire.BytesType) // graph
	m = protowire.AppendVarint(m, uint64(sizes[levels]))
	for k := levels; k >= 1; k-- {
		inner := sizes[k-1]
		m = protowire.AppendTag(m, 1, protowire.BytesType) // GraphProto.node
		m = protowire.AppendVarint(m, uint64(node(inner)))
		m = protowire.AppendTag(m, 5, protowire.BytesType) // NodeProto.attribute
		m = protowire.AppendVarint(m, uint64(attr(inner)))
		m = protowire.AppendTag(m, 6, protowire.BytesType) // AttributeProto.g
		m = protowire.AppendVarint(m, uint64(inner))
	}
	return m
}

// TestHostileDeepNesting: models made of deeply nested subgraphs, just under
// and far over protobuf's recursion limit, neither crash nor hang any command:
// they are refused with a one-line message, or (inspect, convert) handled.
func TestHostileDeepNesting(t *testing.T) {
	dir := t.TempDir()
	good := goodTokens(t, dir, hostile.Vocab, 1, 8)
	for _, levels := range []int{3000, 20000} {
		in := filepath.Join(dir, fmt.Sprintf("deep%d.onnx", levels))
		if err := os.WriteFile(in, deepModel(levels), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range modelCmds(good) {
			t.Run(fmt.Sprintf("%d/%s", levels, cmd.name), func(t *testing.T) {
				outDir := t.TempDir()
				out := filepath.Join(outDir, "out.onnx")
				var ms goruntime.MemStats
				goruntime.ReadMemStats(&ms)
				start := ms.TotalAlloc
				code, stdout, stderr := runMainSafe(t, cmd.args(in, out)...)
				goruntime.ReadMemStats(&ms)
				// The file is tens of KiB: walking it may cost a few MiB, not
				// the square of its depth.
				if got := ms.TotalAlloc - start; got > 64<<20 {
					t.Errorf("allocated %d MiB for a %d KiB file", got>>20, len(deepModel(levels))>>10)
				}
				if code == 0 && (cmd.name == "inspect" || cmd.name == "convert") {
					if cmd.name == "convert" {
						checkFaithful(t, in, out)
					}
					return
				}
				checkRefusal(t, cmd.name, code, stdout, stderr, in, nil)
				if files := testenv.DirNames(t, outDir); len(files) > 0 {
					t.Errorf("output folder holds %v after a refusal", files)
				}
			})
		}
	}
}
