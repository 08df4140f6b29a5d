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
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx"
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

// ModelCases returns the File and Graph cases built from base, a valid
// decoder model with inline float weights whose first input is the token ids
// (Base is one). base is not modified.
func ModelCases(base *pb.ModelProto) ([]Case, error) {
	emb, err := embedding(base)
	if err != nil {
		return nil, err
	}
	node, weight, err := projection(base)
	if err != nil {
		return nil, err
	}
	embData, err := floatBytes(emb)
	if err != nil {
		return nil, err
	}
	ids := base.Graph.Input[0].GetName()
	constant := ""
	for _, n := range base.Graph.Node {
		if n.GetOpType() == "Constant" && len(n.Attribute) > 0 && n.Attribute[0].T != nil {
			constant = n.GetName()
			break
		}
	}
	if constant == "" {
		return nil, errors.New("hostile: base model has no named Constant node with a tensor value")
	}
	e := emb.GetName()
	opset := defaultOpset(base)

	// external moves the embedding's data to a file and points at it with kv.
	external := func(m *pb.ModelProto, kv ...string) {
		t := initializer(m, e)
		t.RawData, t.FloatData = nil, nil
		t.DataLocation = pb.TensorProto_EXTERNAL.Enum()
		t.ExternalData = nil
		for i := 0; i+1 < len(kv); i += 2 {
			t.ExternalData = append(t.ExternalData, &pb.StringStringEntryProto{Key: proto.String(kv[i]), Value: proto.String(kv[i+1])})
		}
	}
	// model writes m as dir/model/model.onnx (the model's own folder is a
	// subfolder, so that dir itself counts as outside it).
	model := func(dir string, m *pb.ModelProto) (string, error) {
		sub := filepath.Join(dir, "model")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return "", err
		}
		p := filepath.Join(sub, "model.onnx")
		return p, writeModel(p, m)
	}
	// mutate returns a Write that applies f to a copy of base.
	mutate := func(f func(m *pb.ModelProto)) func(dir string) (string, error) {
		return func(dir string) (string, error) {
			m := proto.Clone(base).(*pb.ModelProto)
			f(m)
			return model(dir, m)
		}
	}
	// secret writes the embedding's true bytes outside the model's folder, so
	// that a loader that follows an escaping location would succeed.
	secret := func(dir string) (string, error) {
		p := filepath.Join(dir, "secret.bin")
		return p, os.WriteFile(p, embData, 0o644)
	}
	size := int64(len(embData))
	const tib = int64(1) << 40

	cases := []Case{
		{
			Name: "ext-absolute", Stage: File, Names: []string{e, "absolute"},
			Doc: "external data at an absolute location (the file exists and holds the right bytes)",
			Write: func(dir string) (string, error) {
				s, err := secret(dir)
				if err != nil {
					return "", err
				}
				return mutate(func(m *pb.ModelProto) { external(m, "location", s) })(dir)
			},
		},
		{
			Name: "ext-dotdot", Stage: File, Names: []string{e, "../secret.bin"},
			Doc: "external data at ../secret.bin, outside the model's folder (the file exists)",
			Write: func(dir string) (string, error) {
				if _, err := secret(dir); err != nil {
					return "", err
				}
				return mutate(func(m *pb.ModelProto) { external(m, "location", "../secret.bin") })(dir)
			},
		},
		{
			Name: "ext-dotdot-inner", Stage: File, Names: []string{e, "sub/../../secret.bin"},
			Doc: "external data at sub/../../secret.bin: climbs out after a folder that exists",
			Write: func(dir string) (string, error) {
				if _, err := secret(dir); err != nil {
					return "", err
				}
				if err := os.MkdirAll(filepath.Join(dir, "model", "sub"), 0o755); err != nil {
					return "", err
				}
				return mutate(func(m *pb.ModelProto) { external(m, "location", "sub/../../secret.bin") })(dir)
			},
		},
		{
			Name: "ext-symlink", Stage: File, Names: []string{e, "w.bin", "symlink"},
			Doc: "external data in w.bin, a symlink inside the model's folder to a file outside it",
			Write: func(dir string) (string, error) {
				s, err := secret(dir)
				if err != nil {
					return "", err
				}
				p, err := mutate(func(m *pb.ModelProto) { external(m, "location", "w.bin") })(dir)
				if err != nil {
					return "", err
				}
				return p, os.Symlink(s, filepath.Join(dir, "model", "w.bin"))
			},
		},
		{
			Name: "ext-symlink-dir", Stage: File, Names: []string{e, "up/secret.bin", "symlink"},
			Doc: "external data in up/secret.bin, where up is a symlink to the folder above the model's",
			Write: func(dir string) (string, error) {
				if _, err := secret(dir); err != nil {
					return "", err
				}
				p, err := mutate(func(m *pb.ModelProto) { external(m, "location", "up/secret.bin") })(dir)
				if err != nil {
					return "", err
				}
				return p, os.Symlink("..", filepath.Join(dir, "model", "up"))
			},
		},
		{
			Name: "ext-missing", Stage: File, Names: []string{e, "gone.bin"},
			Doc:   "external data in a file that does not exist",
			Write: mutate(func(m *pb.ModelProto) { external(m, "location", "gone.bin") }),
		},
		{
			Name: "ext-offset-past-end", Stage: File, Names: []string{e, "w.bin", "offset"},
			Doc: "external data offset past the end of its file",
			Write: func(dir string) (string, error) {
				p, err := mutate(func(m *pb.ModelProto) {
					external(m, "location", "w.bin", "offset", fmt.Sprint(size+64), "length", fmt.Sprint(size))
				})(dir)
				if err != nil {
					return "", err
				}
				return p, os.WriteFile(filepath.Join(dir, "model", "w.bin"), embData, 0o644)
			},
		},
		{
			Name: "ext-length-past-end", Stage: File, Names: []string{e, "w.bin", "length"},
			Doc: "external data offset + length past the end of its file (the file is one byte short)",
			Write: func(dir string) (string, error) {
				p, err := mutate(func(m *pb.ModelProto) {
					external(m, "location", "w.bin", "offset", "0", "length", fmt.Sprint(size))
				})(dir)
				if err != nil {
					return "", err
				}
				return p, os.WriteFile(filepath.Join(dir, "model", "w.bin"), embData[:size-1], 0o644)
			},
		},
		{
			Name: "ext-huge-length", Stage: File, Names: []string{e, "w.bin"}, Claims: tib,
			Doc: "external data claiming a length of 1 TiB from a file of a few KiB",
			Write: func(dir string) (string, error) {
				p, err := mutate(func(m *pb.ModelProto) {
					external(m, "location", "w.bin", "offset", "0", "length", fmt.Sprint(tib))
				})(dir)
				if err != nil {
					return "", err
				}
				return p, os.WriteFile(filepath.Join(dir, "model", "w.bin"), embData, 0o644)
			},
		},
		{
			Name: "ext-terabyte-dims", Stage: File, Names: []string{e, "w.bin"}, Claims: 4 * tib,
			Doc: "external tensor whose dims claim 4 TiB, with no length, in a file of a few KiB",
			Write: func(dir string) (string, error) {
				p, err := mutate(func(m *pb.ModelProto) {
					external(m, "location", "w.bin")
					initializer(m, e).Dims = []int64{1 << 20, 1 << 20}
				})(dir)
				if err != nil {
					return "", err
				}
				return p, os.WriteFile(filepath.Join(dir, "model", "w.bin"), embData, 0o644)
			},
		},
		{
			Name: "dims-overflow", Stage: File, Names: []string{e, "overflow"},
			Doc:   "initializer dims whose product overflows int64 ([2^32 2^32 2^32])",
			Write: mutate(func(m *pb.ModelProto) { initializer(m, e).Dims = []int64{1 << 32, 1 << 32, 1 << 32} }),
		},
		{
			Name: "dims-bytes-overflow", Stage: File, Names: []string{e, "overflow"},
			Doc:   "initializer whose element count fits int64 but whose byte size does not ([2^31 2^31] float)",
			Write: mutate(func(m *pb.ModelProto) { initializer(m, e).Dims = []int64{1 << 31, 1 << 31} }),
		},
		{
			Name: "dims-negative", Stage: File, Names: []string{e, "negative"},
			Doc:   "initializer with a negative dim",
			Write: mutate(func(m *pb.ModelProto) { t := initializer(m, e); t.Dims = []int64{-t.Dims[0], t.Dims[1]} }),
		},
		{
			Name: "terabyte-inline", Stage: File, Names: []string{e}, Claims: 4 * tib,
			Doc: "inline initializer whose dims claim 4 TiB ([2^20 2^20] float) over a few KiB of raw_data",
			Write: mutate(func(m *pb.ModelProto) {
				t := initializer(m, e)
				t.FloatData, t.RawData = nil, embData
				t.Dims = []int64{1 << 20, 1 << 20}
			}),
		},
		{
			Name: "gigabyte-inline", Stage: File, Names: []string{e}, Claims: 1 << 30,
			Doc: "inline initializer whose dims claim 1 GiB ([2^28] float) over a few KiB of float_data: allocatable, so a loader that trusts dims would",
			Write: mutate(func(m *pb.ModelProto) {
				t := initializer(m, e)
				t.Dims = []int64{1 << 28}
			}),
		},
		{
			Name: "constant-terabyte", Stage: File, Names: []string{constant, "value"}, Claims: 4 * tib,
			Doc: "a Constant node whose value tensor claims 4 TiB over a few bytes",
			Write: mutate(func(m *pb.ModelProto) {
				findNode(m, constant).Attribute[0].T.Dims = []int64{1 << 20, 1 << 20}
			}),
		},
		{
			Name: "raw-size-mismatch", Stage: File, Names: []string{e, "raw_data"},
			Doc: "initializer whose raw_data is shorter than its dims need",
			Write: mutate(func(m *pb.ModelProto) {
				t := initializer(m, e)
				t.FloatData, t.RawData = nil, embData[:len(embData)-4]
			}),
		},
		{
			Name: "truncated", Stage: File, Names: []string{"truncated"},
			Doc: "the base model cut in the middle",
			Write: func(dir string) (string, error) {
				b, err := modelgen.Marshal(base)
				if err != nil {
					return "", err
				}
				p := filepath.Join(dir, "truncated.onnx")
				return p, os.WriteFile(p, b[:len(b)/2], 0o644)
			},
		},
		{
			Name: "truncated-header", Stage: File, Names: []string{"not"},
			Doc: "the first 3 bytes of the base model",
			Write: func(dir string) (string, error) {
				b, err := modelgen.Marshal(base)
				if err != nil {
					return "", err
				}
				p := filepath.Join(dir, "head.onnx")
				return p, os.WriteFile(p, b[:3], 0o644)
			},
		},
		{
			Name: "not-onnx", Stage: File, Names: []string{"not an ONNX model"},
			Doc: "a text file named .onnx",
			Write: func(dir string) (string, error) {
				p := filepath.Join(dir, "text.onnx")
				return p, os.WriteFile(p, []byte("This is not a model.\nIt is a text file.\n"), 0o644)
			},
		},
		{
			Name: "empty-file", Stage: File, Names: []string{"no graph"},
			Doc: "an empty file (a valid, empty protobuf message: no graph)",
			Write: func(dir string) (string, error) {
				p := filepath.Join(dir, "empty.onnx")
				return p, os.WriteFile(p, nil, 0o644)
			},
		},
		{
			Name: "directory", Stage: File, Names: []string{"directory"},
			Doc: "a folder named model.onnx",
			Write: func(dir string) (string, error) {
				p := filepath.Join(dir, "dir.onnx")
				return p, os.Mkdir(p, 0o755)
			},
		},
		{
			Name: "cycle", Stage: Graph, Names: []string{"cycle"},
			Doc: "two nodes of layer 0 that read each other's output",
			Write: mutate(func(m *pb.ModelProto) {
				a, b := chain(m, e)
				a.Input[indexOf(a.Input, gatheredValue(m, e))] = b.Output[0]
			}),
		},
		{
			Name: "self-loop", Stage: Graph, Names: []string{"cycle"},
			Doc: "a node that reads its own output",
			Write: mutate(func(m *pb.ModelProto) {
				n := findNode(m, node.GetName())
				n.Input[0] = n.Output[0]
			}),
		},
		{
			Name: "undefined-value", Stage: Graph, Names: []string{node.GetName(), "no_such_value"},
			Doc: "a node reading a value that no node, input or initializer defines",
			Write: mutate(func(m *pb.ModelProto) {
				findNode(m, node.GetName()).Input[0] = "no_such_value"
			}),
		},
		{
			Name: "missing-initializer", Stage: Graph, Names: []string{weight.GetName()},
			Doc: "the weight of the first projection removed from the initializers (its node still reads it)",
			Write: mutate(func(m *pb.ModelProto) {
				g := m.Graph
				for i, t := range g.Initializer {
					if t.GetName() == weight.GetName() {
						g.Initializer = append(g.Initializer[:i], g.Initializer[i+1:]...)
						return
					}
				}
			}),
		},
		{
			Name: "missing-embedding", Stage: Graph, Names: []string{e},
			Doc: "the token embedding table removed from the initializers",
			Write: mutate(func(m *pb.ModelProto) {
				g := m.Graph
				for i, t := range g.Initializer {
					if t.GetName() == e {
						g.Initializer = append(g.Initializer[:i], g.Initializer[i+1:]...)
						return
					}
				}
			}),
		},
		{
			Name: "duplicate-producer", Stage: Graph, Names: []string{node.Output[0]},
			Doc: "two nodes writing the same value",
			Write: mutate(func(m *pb.ModelProto) {
				a, _ := chain(m, e)
				a.Output[0] = node.Output[0]
			}),
		},
		{
			Name: "output-undefined", Stage: Graph, Names: []string{"no_such_output"},
			Doc: "a graph output that nothing produces",
			Write: mutate(func(m *pb.ModelProto) {
				m.Graph.Output[0].Name = proto.String("no_such_output")
			}),
		},
		{
			Name: "float-input-ids", Stage: Graph, Names: []string{ids + " | " + gatherNode(base, e), "float"},
			Doc: "the token-id input declared float",
			Write: mutate(func(m *pb.ModelProto) {
				m.Graph.Input[0].Type.GetTensorType().ElemType = proto.Int32(int32(pb.TensorProto_FLOAT))
			}),
		},
		{
			Name: "int-weights", Stage: Graph, Names: []string{node.GetName(), "int32"},
			Doc: "the first projection's weight stored as int32 where float is expected",
			Write: mutate(func(m *pb.ModelProto) {
				t := initializer(m, weight.GetName())
				vals, _ := onnx.Float32s(t)
				t.FloatData, t.RawData = nil, nil
				t.DataType = proto.Int32(int32(pb.TensorProto_INT32))
				for _, v := range vals {
					t.Int32Data = append(t.Int32Data, int32(v*100))
				}
			}),
		},
		{
			Name: "unknown-dtype", Stage: Graph, Names: []string{weight.GetName()},
			Doc: "an initializer of data type 99, which ONNX does not define",
			Write: mutate(func(m *pb.ModelProto) {
				t := initializer(m, weight.GetName())
				b, _ := floatBytes(t)
				t.FloatData, t.RawData = nil, b
				t.DataType = proto.Int32(99)
			}),
		},
		{
			Name: "unsupported-op", Stage: Graph, Names: []string{node.GetName(), "FancyMatMul", fmt.Sprint(opset)},
			Doc: "the first projection's op renamed FancyMatMul, which opset " + fmt.Sprint(opset) + " does not define",
			Write: mutate(func(m *pb.ModelProto) {
				findNode(m, node.GetName()).OpType = proto.String("FancyMatMul")
			}),
		},
		{
			Name: "custom-domain-op", Stage: Graph, Names: []string{node.GetName(), "com.example"},
			Doc: "the first projection moved to a custom domain com.example (imported, version 1) that no runtime here knows",
			Write: mutate(func(m *pb.ModelProto) {
				n := findNode(m, node.GetName())
				n.Domain = proto.String("com.example")
				m.OpsetImport = append(m.OpsetImport, &pb.OperatorSetIdProto{Domain: proto.String("com.example"), Version: proto.Int64(1)})
			}),
		},
		{
			Name: "no-graph", Stage: File, Names: []string{"no graph"},
			Doc: "a ModelProto with an opset but no graph",
			Write: func(dir string) (string, error) {
				m := &pb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: base.OpsetImport}
				p := filepath.Join(dir, "nograph.onnx")
				return p, writeModel(p, m)
			},
		},
	}
	return cases, nil
}

// TokenCases returns the Tokens cases, for a model with a vocabulary of Vocab.
func TokenCases() []Case {
	text := func(name, body string) func(dir string) (string, error) {
		return func(dir string) (string, error) {
			p := filepath.Join(dir, name)
			return p, os.WriteFile(p, []byte(body), 0o644)
		}
	}
	npyFile := func(name string, b []byte) func(dir string) (string, error) {
		return func(dir string) (string, error) {
			p := filepath.Join(dir, name)
			return p, os.WriteFile(p, b, 0o644)
		}
	}
	row := func(n, start int) string {
		s := ""
		for i := range n {
			if i > 0 {
				s += " "
			}
			s += fmt.Sprint((start + 7*i) % Vocab)
		}
		return s
	}
	good := row(16, 1)
	i64 := func(vals ...int64) []byte {
		b := make([]byte, 8*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
		}
		return b
	}
	f32 := func(vals ...float32) []byte {
		b := make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b
	}
	seq := func(n int) []int64 {
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(3 * i % Vocab)
		}
		return v
	}
	outOfRange := seq(16)
	outOfRange[9] = Vocab
	return []Case{
		{Name: "ids-out-of-range", Stage: Tokens, Names: []string{"256"},
			Doc:   "a text token file with id 256 (the vocabulary is 0..255) in row 1",
			Write: text("oor.txt", good+"\n"+row(5, 2)+" 256 "+row(10, 3)+"\n")},
		{Name: "ids-negative", Stage: Tokens, Names: []string{"-1"},
			Doc:   "a text token file with id -1",
			Write: text("neg.txt", good+"\n"+row(3, 2)+" -1 "+row(12, 3)+"\n")},
		{Name: "ids-huge", Stage: Tokens, Names: []string{"99999999999999999999"},
			Doc:   "a text token file with an id past int64",
			Write: text("huge.txt", row(3, 2)+" 99999999999999999999 "+row(12, 3)+"\n")},
		{Name: "ids-not-numbers", Stage: Tokens, Names: []string{"hello"},
			Doc:   "a text token file with a word among the ids",
			Write: text("words.txt", row(3, 2)+" hello "+row(12, 3)+"\n")},
		{Name: "ragged", Stage: Tokens, Names: []string{"ragged.txt"},
			Doc:   "a text token file whose rows have 16 and 12 ids",
			Write: text("ragged.txt", good+"\n"+row(12, 5)+"\n")},
		{Name: "npy-out-of-range", Stage: Tokens, Names: []string{"256"},
			Doc:   "an int64 .npy [1 16] holding id 256",
			Write: npyFile("oor.npy", npyBytes("<i8", []int{1, 16}, i64(outOfRange...)))},
		{Name: "npy-float", Stage: Tokens, Names: []string{"<f4"},
			Doc:   "a float32 .npy [1 4]: token ids must be integers",
			Write: npyFile("float.npy", npyBytes("<f4", []int{1, 4}, f32(1, 2, 3, 4)))},
		{Name: "npy-3d", Stage: Tokens, Names: []string{"[2 2 4]"},
			Doc:   "an int64 .npy of shape [2 2 4]",
			Write: npyFile("3d.npy", npyBytes("<i8", []int{2, 2, 4}, i64(seq(16)...)))},
		{Name: "npy-terabyte", Stage: Tokens, Names: []string{"terabyte.npy"}, Claims: 8 << 40,
			Doc:   "an int64 .npy whose header claims [2^20 2^20] (8 TiB) over 64 bytes of data",
			Write: npyFile("terabyte.npy", npyBytes("<i8", []int{1 << 20, 1 << 20}, i64(seq(8)...)))},
		{Name: "npy-truncated", Stage: Tokens, Names: []string{"short.npy"},
			Doc:   "an int64 .npy [1 16] cut after 5 ids",
			Write: npyFile("short.npy", npyBytes("<i8", []int{1, 16}, i64(seq(5)...)))},
		{Name: "tokens-empty", Stage: Tokens, Names: []string{"empty.txt"},
			Doc:   "an empty token file",
			Write: text("empty.txt", "")},
		{Name: "tokens-binary", Stage: Tokens, Names: []string{"junk.bin"},
			Doc:   "binary junk with no extension",
			Write: npyFile("junk.bin", []byte{0, 1, 2, 0xff, 0xfe, 0x93, 'N', 'U', 'M', 0, 0, 7})},
	}
}

// npyBytes writes a .npy version 1.0 file of dtype and shape holding data
// (which need not match the shape: hostile files lie).
func npyBytes(dtype string, shape []int, data []byte) []byte {
	s := "("
	for i, d := range shape {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(d)
	}
	if len(shape) == 1 {
		s += ","
	}
	s += ")"
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", dtype, s)
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	b = append(b, header...)
	return append(b, data...)
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

func initializer(m *pb.ModelProto, name string) *pb.TensorProto {
	for _, t := range m.Graph.Initializer {
		if t.GetName() == name {
			return t
		}
	}
	panic("hostile: no initializer " + name) // the cases only name ones found in base
}

func findNode(m *pb.ModelProto, name string) *pb.NodeProto {
	for _, n := range m.Graph.Node {
		if n.GetName() == name {
			return n
		}
	}
	panic("hostile: no node " + name)
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	panic("hostile: " + s + " not in list")
}

func defaultOpset(m *pb.ModelProto) int64 {
	for _, o := range m.OpsetImport {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// embedding finds the token embedding: the float initializer of rank 2 that
// a Gather indexes with the model's first input.
func embedding(m *pb.ModelProto) (*pb.TensorProto, error) {
	if m.GetGraph() == nil || len(m.Graph.Input) == 0 {
		return nil, errors.New("hostile: base model has no graph inputs")
	}
	ids := m.Graph.Input[0].GetName()
	for _, n := range m.Graph.Node {
		if n.GetOpType() == "Gather" && len(n.Input) == 2 && n.Input[1] == ids {
			for _, t := range m.Graph.Initializer {
				if t.GetName() == n.Input[0] && len(t.Dims) == 2 && t.GetDataType() == int32(pb.TensorProto_FLOAT) {
					return t, nil
				}
			}
		}
	}
	return nil, errors.New("hostile: base model has no float embedding initializer gathered by its first input")
}

// projection finds the first MatMul whose second input is a float initializer.
func projection(m *pb.ModelProto) (*pb.NodeProto, *pb.TensorProto, error) {
	for _, n := range m.Graph.Node {
		if n.GetOpType() != "MatMul" || len(n.Input) != 2 || n.GetName() == "" {
			continue
		}
		for _, t := range m.Graph.Initializer {
			if t.GetName() == n.Input[1] && t.GetDataType() == int32(pb.TensorProto_FLOAT) {
				return n, t, nil
			}
		}
	}
	return nil, nil, errors.New("hostile: base model has no named MatMul reading a float initializer")
}

// chain returns two nodes a → b: a is the first node that reads the
// embedding's Gather output, b the first node that reads a's output.
func chain(m *pb.ModelProto, emb string) (a, b *pb.NodeProto) {
	gathered := gatheredValue(m, emb)
	for _, n := range m.Graph.Node {
		if a == nil && indexOrNeg(n.Input, gathered) >= 0 {
			a = n
			continue
		}
		if a != nil && indexOrNeg(n.Input, a.Output[0]) >= 0 {
			return a, n
		}
	}
	panic("hostile: no two chained nodes after the embedding")
}

// gatherNode is the name of the Gather that reads the embedding emb.
func gatherNode(m *pb.ModelProto, emb string) string {
	for _, n := range m.Graph.Node {
		if n.GetOpType() == "Gather" && len(n.Input) > 0 && n.Input[0] == emb {
			return n.GetName()
		}
	}
	return emb
}

// gatheredValue is the output of the Gather that reads the embedding emb.
func gatheredValue(m *pb.ModelProto, emb string) string {
	for _, n := range m.Graph.Node {
		if n.GetOpType() == "Gather" && len(n.Input) > 0 && n.Input[0] == emb {
			return n.Output[0]
		}
	}
	panic("hostile: no Gather reads " + emb)
}

func indexOrNeg(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// floatBytes returns a float tensor's data as little-endian raw bytes.
func floatBytes(t *pb.TensorProto) ([]byte, error) {
	vals, err := onnx.Float32s(t)
	if err != nil {
		return nil, fmt.Errorf("hostile: tensor %q: %w", t.GetName(), err)
	}
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b, nil
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
