// The File and Graph cases: a valid model, mutated one way each, and the
// helpers that find what to break by structure.

package hostile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

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
	// mutateWithBin returns a Write that applies f to a copy of base and
	// writes data as w.bin in the model's folder.
	mutateWithBin := func(data []byte, f func(m *pb.ModelProto)) func(dir string) (string, error) {
		return func(dir string) (string, error) {
			p, err := mutate(f)(dir)
			if err != nil {
				return "", err
			}
			return p, os.WriteFile(filepath.Join(dir, "model", "w.bin"), data, 0o644)
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
			Write: mutateWithBin(embData, func(m *pb.ModelProto) {
				external(m, "location", "w.bin", "offset", fmt.Sprint(size+64), "length", fmt.Sprint(size))
			}),
		},
		{
			Name: "ext-length-past-end", Stage: File, Names: []string{e, "w.bin", "length"},
			Doc: "external data offset + length past the end of its file (the file is one byte short)",
			Write: mutateWithBin(embData[:size-1], func(m *pb.ModelProto) {
				external(m, "location", "w.bin", "offset", "0", "length", fmt.Sprint(size))
			}),
		},
		{
			Name: "ext-huge-length", Stage: File, Names: []string{e, "w.bin"}, Claims: tib,
			Doc: "external data claiming a length of 1 TiB from a file of a few KiB",
			Write: mutateWithBin(embData, func(m *pb.ModelProto) {
				external(m, "location", "w.bin", "offset", "0", "length", fmt.Sprint(tib))
			}),
		},
		{
			Name: "ext-terabyte-dims", Stage: File, Names: []string{e, "w.bin"}, Claims: 4 * tib,
			Doc: "external tensor whose dims claim 4 TiB, with no length, in a file of a few KiB",
			Write: mutateWithBin(embData, func(m *pb.ModelProto) {
				external(m, "location", "w.bin")
				initializer(m, e).Dims = []int64{1 << 20, 1 << 20}
			}),
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
			Doc:   "the base model cut in the middle",
			Write: writeCut(base, "truncated.onnx", func(n int) int { return n / 2 }),
		},
		{
			Name: "truncated-header", Stage: File, Names: []string{"not"},
			Doc:   "the first 3 bytes of the base model",
			Write: writeCut(base, "head.onnx", func(int) int { return 3 }),
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

// writeCut writes the first keep(n) of the n bytes of m's encoding to file
// in the folder given.
func writeCut(m *pb.ModelProto, file string, keep func(n int) int) func(dir string) (string, error) {
	return func(dir string) (string, error) {
		b, err := modelgen.Marshal(m)
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, file)
		return p, os.WriteFile(p, b[:keep(len(b))], 0o644)
	}
}
