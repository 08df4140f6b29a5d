// Package hostile builds malformed inputs for onnxslm's hostile-input tests:
// models whose external data escapes their folder or lies about its size,
// tensors whose dims overflow or claim terabytes, graphs with cycles,
// undefined values, missing initializers, wrong dtypes and unknown ops,
// truncated and non-ONNX files, and bad token files.
//
// Every case writes its files into a folder the caller gives (a test's
// t.TempDir()), so nothing hostile needs to be committed; `go generate
// ./internal/hostile` only rewrites the catalogue testdata/hostile/README.md,
// and `go run ./internal/hostile/genhostile -all DIR` writes every case into
// DIR for trying the CLI by hand.
//
// Model cases mutate a copy of a small, valid decoder model (Base: modelgen's
// tiny_llama, built in memory) and find what they break by structure (the
// token embedding, the first projection), never by hard-coded names; each case
// says which names a good error message must contain.
package hostile

//go:generate go run ./genhostile -readme ../../testdata/hostile/README.md

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Stage says where a case's fault lies, and so which commands must refuse it.
type Stage int

const (
	// File: the file cannot be read as a model at all (truncated, not ONNX,
	// external data refused, tensor sizes that lie). Every command that reads
	// a model (inspect, convert, eval, prune) must refuse it.
	File Stage = iota
	// Graph: the file decodes, but the graph cannot be run (cycle, undefined
	// value, wrong dtype, unknown op). Commands that run or rewrite the
	// graph (eval, prune) must refuse it.
	Graph
	// Tokens: a bad token file for `eval --tokens` and `prune --calib`,
	// against a model with a vocabulary of Vocab.
	Tokens
)

func (s Stage) String() string {
	switch s {
	case File:
		return "file"
	case Graph:
		return "graph"
	case Tokens:
		return "tokens"
	}
	return fmt.Sprintf("Stage(%d)", int(s))
}

// Vocab is the vocabulary size of Base, which the token cases are built for.
const Vocab = 256

// Case is one hostile input.
type Case struct {
	Name  string // short and file-name safe, e.g. "ext-dotdot"
	Doc   string // one line: what is wrong with it
	Stage Stage
	// Names are what a good error message must contain besides the file it
	// was given: the tensor, node, value, op or location at fault. An entry
	// "a | b" is satisfied by either.
	Names []string
	// Claims is the number of bytes the input claims to hold where that is
	// far more than it holds (0 otherwise): reading it must not allocate that.
	Claims int64
	// Write writes the case's files into dir (which must exist and be empty
	// of the names it uses) and returns the path to give onnxslm. The path
	// may lie in a subfolder of dir; files that the model must not reach
	// (the target of an escaping location) lie outside that subfolder.
	Write func(dir string) (string, error)
}

// BaseConfig is the modelgen config of Base: tiny_llama, 4 layers, vocab 256.
func BaseConfig() modelgen.Config {
	for _, f := range modelgen.Fixtures() {
		if f.Name == "tiny_llama" {
			return f.Config
		}
	}
	return modelgen.Config{Arch: modelgen.Llama, Layers: 4, Hidden: 32, Heads: 4, FFN: 40, Vocab: Vocab,
		MaxPos: 128, Opset: 14, Seed: 1, TransposedWeights: true}
}

// Base builds the valid model the model cases mutate.
func Base() (*pb.ModelProto, error) {
	m, err := modelgen.Build(BaseConfig())
	if err != nil {
		return nil, fmt.Errorf("hostile: base model: %w", err)
	}
	return m, nil
}

// All returns every case: ModelCases(Base()) then TokenCases().
func All() ([]Case, error) {
	base, err := Base()
	if err != nil {
		return nil, err
	}
	cs, err := ModelCases(base)
	if err != nil {
		return nil, err
	}
	return append(cs, TokenCases()...), nil
}

// Write writes every case into its own subfolder of dir (named after the case)
// and returns the paths to give onnxslm, by case name.
func Write(dir string, cases []Case) (map[string]string, error) {
	paths := map[string]string{}
	for _, c := range cases {
		sub := filepath.Join(dir, c.Name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, fmt.Errorf("hostile: %s: %w", c.Name, err)
		}
		p, err := c.Write(sub)
		if err != nil {
			return nil, fmt.Errorf("hostile: %s: %w", c.Name, err)
		}
		paths[c.Name] = p
	}
	return paths, nil
}

func marshal(m *pb.ModelProto) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

func writeModel(path string, m *pb.ModelProto) error {
	b, err := marshal(m)
	if err != nil {
		return fmt.Errorf("hostile: marshal %s: %w", path, err)
	}
	return os.WriteFile(path, b, 0o644)
}

// Catalogue returns testdata/hostile/README.md: what each case is and which
// commands must refuse it.
func Catalogue(cases []Case) []byte {
	var b strings.Builder
	b.WriteString(catalogueHead)
	for _, c := range cases {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", c.Name, c.Stage, c.Doc, strings.Join(quoteAll(c.Names), ", "))
	}
	b.WriteString(catalogueTail)
	return []byte(b.String())
}

func quoteAll(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "`" + n + "`"
	}
	return q
}

const catalogueHead = `# Hostile inputs

Bad models and token files for onnxslm's hostile-input tests
(cmd/onnxslm/hostile_test.go). They are built by the Go package internal/hostile into
each test's temporary folder, so none is committed here: this file is the catalogue.
Do not edit: regenerate with ` + "`go generate ./internal/hostile`" + ` (TestCatalogueUpToDate
fails when it differs). To try the CLI on them by hand:

    go run ./internal/hostile/genhostile -all /tmp/hostile
    go run ./cmd/onnxslm inspect /tmp/hostile/ext-dotdot/model/model.onnx

Model cases are a copy of modelgen's tiny_llama (4 layers, vocab 256) with one thing
broken; token cases are for a model with a vocabulary of 256. Stages: **file** cases
must be refused by every command that reads a model (inspect, convert, eval, prune);
**graph** cases by the commands that run or rewrite the graph (eval, prune); **tokens**
cases by ` + "`eval --tokens`" + ` and ` + "`prune --calib`" + `. Every refusal is exit status 1
with a one-line message naming the file and what is at fault (the last column), no
output file, and the input files unchanged.

| case | stage | what is wrong | the message names |
|---|---|---|---|
`

const catalogueTail = `
Besides these, the tests refuse OUT == IN (also through a symlink), run prune on the
non-decoder fixtures testdata/models/neg_*.onnx (the message names the layer that
differs) and check that memory stays bounded on the cases that claim more than they
hold.
`
