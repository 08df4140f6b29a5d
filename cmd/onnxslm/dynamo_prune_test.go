package main

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// TestDynamoLayoutsPrune is TestDeployedLayoutsPrune for the torch dynamo
// exports (opset 18 decomposed, opset 23 RMSNormalization/Attention, and
// dynamo_export's local functions): eval equals onnxruntime's perplexity
// (0.05 %); the default prune and --method slm to 75 % of the layers write
// a file of the same ops (dynamo_export's: the kept layers' calls and their
// functions, no other function, no layer's node in the main graph) that
// onnxruntime runs with and without a past at the perplexity eval reports;
// the nodes kept keep their metadata_props and no removed layer's name
// scope is left; the default prune is within 2 % of the plain twin's.
func TestDynamoLayoutsPrune(t *testing.T) {
	if testing.Short() {
		t.Skip("prunes six models")
	}
	ort := judge.ORT(t)
	chk := judge.Checker(t)
	rows, tokens := evalTokens(t)
	for _, v := range dynamoConfigs() {
		d := v.d
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			m, err := modelgen.BuildDynamo(d)
			if err != nil {
				t.Fatal(err)
			}
			model := filepath.Join(t.TempDir(), "model.onnx")
			if err := onnx.Save(m, model, inlineData); err != nil {
				t.Fatal(err)
			}
			flat, err := onnx.InlineFunctions(m)
			if err != nil {
				t.Fatal(err)
			}
			check := func(path string) float64 {
				got := cliPerplexity(t, path, tokens)
				want := ortRowPerplexity(t, ort, path, rows, false, 1e-3)
				rel := math.Abs(got-want) / want
				t.Logf("%s: eval %.6f, onnxruntime %.6f (%.2g relative)", filepath.Base(path), got, want, rel)
				if rel > 5e-4 {
					t.Errorf("%s: eval %.6f, onnxruntime %.6f (%.2g relative, want ≤ 5e-4)", path, got, want, rel)
				}
				if err := chk.Check(path); judge.TooNew(err) {
					t.Logf("ONNX checker: %s not judged (%v)", filepath.Base(path), err)
				} else if err != nil {
					t.Errorf("ONNX checker refuses %s: %v", path, err)
				}
				return got
			}
			check(model)
			var pruned float64
			for _, method := range []string{"auto", "slm"} {
				out := filepath.Join(t.TempDir(), "model.onnx")
				if code, _, stderr := runCLI(t, model, out, "--prune-ratio", "0.25", "--method", method); code != 0 {
					t.Fatalf("prune --method %s: exit %d: %s", method, code, stderr)
				}
				o := testmodel.Load(t, out)
				oflat, err := onnx.InlineFunctions(o.Proto)
				if err != nil {
					t.Fatal(err)
				}
				if a, b := protoOps(flat), protoOps(oflat); a != b {
					t.Errorf("--method %s: ops changed:\n in  %v\n out %v", method, a, b)
				}
				if d.Functions {
					checkCalls(t, m, o.Proto, 3)
				}
				checkScopes(t, flat, o.Proto, 3)
				if p := check(out); method == "auto" {
					pruned = p
				}
			}
			tp := twinPrunePerplexity(t, d.Twin(), tokens)
			rel := (pruned - tp) / tp
			t.Logf("pruned to 3 layers: perplexity %.4f, the plain twin's prune %.4f (%+.2f %%)", pruned, tp, 100*rel)
			if math.Abs(rel) > 0.02 {
				t.Errorf("pruned perplexity %.4f, the plain twin's prune %.4f: %.2f %% apart, want ≤ 2 %%", pruned, tp, 100*rel)
			}
		})
	}
}

// protoOps is the sorted set of domain:op of a model's main graph.
func protoOps(m *pb.ModelProto) string {
	seen := map[string]bool{}
	for _, n := range m.GetGraph().GetNode() {
		seen[n.GetDomain()+":"+n.GetOpType()] = true
	}
	var s []string
	for k := range seen {
		s = append(s, k)
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

var layerScope = regexp.MustCompile(`'model\.layers\.(\d+)'`)

// checkScopes: every node of out that in had (by name) keeps in's
// metadata_props, and the MatMuls' name scopes name exactly layers decoder
// layers (a node the layers share, like the mask's Where that the optimizer's
// CSE left in layer 0, stays with its scope when layer 0 goes).
func checkScopes(t *testing.T, in, out *pb.ModelProto, layers int) {
	t.Helper()
	before := map[string]map[string]string{}
	for _, n := range in.GetGraph().GetNode() {
		before[n.GetName()] = modelgen.NodeMeta(n)
	}
	scopes := map[string]bool{}
	for _, n := range out.GetGraph().GetNode() {
		md := modelgen.NodeMeta(n)
		if b, ok := before[n.GetName()]; ok && fmt.Sprint(b) != fmt.Sprint(md) {
			t.Errorf("node %s: metadata_props %v, the input's %v", n.GetName(), md, b)
		}
		if n.GetOpType() != "MatMul" {
			continue
		}
		for _, m := range layerScope.FindAllStringSubmatch(md["pkg.torch.onnx.name_scopes"], -1) {
			scopes[m[1]] = true
		}
	}
	if hasMeta(in) && len(scopes) != layers {
		t.Errorf("name scopes of layers %v in the output, want %d layers", scopes, layers)
	}
}

func hasMeta(m *pb.ModelProto) bool {
	for _, n := range m.GetGraph().GetNode() {
		if len(modelgen.NodeMeta(n)) > 0 {
			return true
		}
	}
	return false
}

// checkCalls: out calls layers decoder-layer functions of in's, defines
// only the functions it calls, and computes no layer in its main graph.
func checkCalls(t *testing.T, in, out *pb.ModelProto, layers int) {
	t.Helper()
	defined := map[string]bool{}
	for _, f := range in.GetFunctions() {
		defined[f.GetDomain()+"::"+f.GetName()] = true
	}
	calls := map[string]bool{}
	for _, n := range out.GetGraph().GetNode() {
		if k := n.GetDomain() + "::" + n.GetOpType(); defined[k] {
			calls[k] = true
		}
	}
	if len(calls) != layers {
		t.Errorf("%d layer calls in the output, want %d", len(calls), layers)
	}
	for _, f := range out.GetFunctions() {
		k := f.GetDomain() + "::" + f.GetName()
		if !defined[k] {
			t.Errorf("function %s is not the input's", k)
		}
		if strings.Contains(k, "DecoderLayer") && !calls[k] {
			t.Errorf("function %s written but not called", k)
		}
	}
	matmuls := 0
	for _, n := range out.GetGraph().GetNode() {
		if n.GetOpType() == "MatMul" {
			matmuls++
		}
	}
	if matmuls != 2 {
		t.Errorf("%d MatMuls in the main graph, want 2 (rotary, lm_head): the layers' are in their functions", matmuls)
	}
}

// twinPrunePerplexity is the perplexity eval reports on tokens for the plain
// twin c after the default prune to 75 % of its layers.
func twinPrunePerplexity(t *testing.T, c modelgen.Config, tokens string) float64 {
	t.Helper()
	tm, err := modelgen.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	twin, twinOut := filepath.Join(t.TempDir(), "twin.onnx"), filepath.Join(t.TempDir(), "twin_pruned.onnx")
	if err := onnx.Save(tm, twin, inlineData); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, twin, twinOut, "--prune-ratio", "0.25"); code != 0 {
		t.Fatalf("prune twin: exit %d: %s", code, stderr)
	}
	return cliPerplexity(t, twinOut, tokens)
}

// TestConvertKeepsFunctions: convert re-saves a dynamo_export model as
// written (its local functions kept); inspect finds its layers (inlined).
func TestConvertKeepsFunctions(t *testing.T) {
	m, err := modelgen.BuildDynamo(modelgen.DynamoConfig{Layers: 2, Hidden: 32, Heads: 2, Vocab: 64, Functions: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.onnx"), filepath.Join(dir, "out.onnx")
	if err := onnx.Save(m, in, inlineData); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "convert", in, out); code != 0 {
		t.Fatalf("convert: exit %d: %s", code, stderr)
	}
	o := testmodel.Load(t, out)
	if len(o.Proto.GetFunctions()) != len(m.GetFunctions()) || len(o.Proto.GetGraph().GetNode()) != len(m.GetGraph().GetNode()) {
		t.Errorf("convert wrote %d functions and %d nodes, want %d and %d", len(o.Proto.GetFunctions()),
			len(o.Proto.GetGraph().GetNode()), len(m.GetFunctions()), len(m.GetGraph().GetNode()))
	}
	code, stdout, stderr := runCLI(t, "inspect", "--json", in)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `"num_layers": 2`) {
		t.Errorf("inspect --json: no 2 layers in %.300s", stdout)
	}
}
