package discover_test

// FuzzFind: layer discovery on mutated graphs. The fuzzer picks a small model
// (modelgen's fixtures, built in memory) and a program of mutations (drop,
// duplicate or rewire nodes, change dims, dtypes and op types, drop
// initializers); discover.Find must never panic, always return (no endless
// loop), give one-line errors, and, when it accepts the graph, return a stack
// whose layers chain h_0 → … → h_L through values the graph defines, the same
// stack every time. Inputs that ever crashed stay in testdata/fuzz/FuzzFind.

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// findTimeout bounds one Find on a mutated tiny graph (normally milliseconds).
const findTimeout = 10 * time.Second

var (
	fuzzBasesOnce sync.Once
	fuzzBases     []*pb.ModelProto
	fuzzBasesErr  error
)

// bases are the fixtures the fuzzer mutates: every decoder and negative model
// modelgen commits, built in memory.
func bases(tb testing.TB) []*pb.ModelProto {
	tb.Helper()
	fuzzBasesOnce.Do(func() {
		for _, f := range modelgen.Fixtures() {
			m, err := modelgen.Build(f.Config)
			if err != nil {
				fuzzBasesErr = fmt.Errorf("fixture %s: %w", f.Name, err)
				return
			}
			fuzzBases = append(fuzzBases, m)
		}
	})
	if fuzzBasesErr != nil {
		tb.Fatal(fuzzBasesErr)
	}
	return fuzzBases
}

// mutation opcodes; each reads three argument bytes a, b, c.
const (
	opDropNode = iota
	opDupNode
	opRewire
	opDims
	opSwapOp
	opUndefined
	opDropInit
	opDropAttr
	opDType
	opDropOutput
	opToGraphInput
	opSelfLoop
	opCount
)

// mutate applies the program prog (4 bytes per step) to a copy of m.
func mutate(m *pb.ModelProto, prog []byte) *pb.ModelProto {
	m = proto.Clone(m).(*pb.ModelProto)
	g := m.Graph
	pick := func(n int, b byte) int { return int(b) % n }
	// value names: the outputs of nodes, by node index.
	out := func(i int) string {
		if len(g.Node[i].Output) == 0 {
			return ""
		}
		return g.Node[i].Output[0]
	}
	for len(prog) >= 4 {
		op, a, b, c := prog[0]%opCount, prog[1], prog[2], prog[3]
		prog = prog[4:]
		if len(g.Node) == 0 {
			break
		}
		n := g.Node[pick(len(g.Node), a)]
		switch op {
		case opDropNode:
			i := pick(len(g.Node), a)
			g.Node = append(g.Node[:i:i], g.Node[i+1:]...)
		case opDupNode:
			d := proto.Clone(n).(*pb.NodeProto)
			if b%2 == 1 { // a true copy under new output names, or a second producer
				for j := range d.Output {
					d.Output[j] += "_dup"
				}
			}
			d.Name = proto.String(d.GetName() + "_dup")
			i := pick(len(g.Node)+1, c)
			g.Node = append(g.Node[:i:i], append([]*pb.NodeProto{d}, g.Node[i:]...)...)
		case opRewire:
			if len(n.Input) > 0 {
				if v := out(pick(len(g.Node), c)); v != "" {
					n.Input[pick(len(n.Input), b)] = v
				}
			}
		case opDims:
			if len(g.Initializer) > 0 {
				t := g.Initializer[pick(len(g.Initializer), a)]
				if len(t.Dims) > 0 {
					j := pick(len(t.Dims), b)
					switch c % 6 {
					case 0:
						t.Dims[j] = 0
					case 1:
						t.Dims[j] = 1
					case 2:
						t.Dims[j] = -1
					case 3:
						t.Dims[j] *= 2
					case 4:
						t.Dims[j] = 1 << 40
					case 5:
						t.Dims = append(t.Dims, int64(c))
					}
				} else {
					t.Dims = []int64{int64(c)}
				}
			}
		case opSwapOp:
			o := g.Node[pick(len(g.Node), c)]
			n.OpType, o.OpType = o.OpType, n.OpType
		case opUndefined:
			if len(n.Input) > 0 {
				n.Input[pick(len(n.Input), b)] = fmt.Sprintf("undefined_%d", c)
			}
		case opDropInit:
			if len(g.Initializer) > 0 {
				i := pick(len(g.Initializer), a)
				g.Initializer = append(g.Initializer[:i:i], g.Initializer[i+1:]...)
			}
		case opDropAttr:
			if len(n.Attribute) > 0 {
				i := pick(len(n.Attribute), b)
				n.Attribute = append(n.Attribute[:i:i], n.Attribute[i+1:]...)
			}
		case opDType:
			if len(g.Initializer) > 0 {
				t := g.Initializer[pick(len(g.Initializer), a)]
				t.DataType = proto.Int32(int32(c % 17))
			}
		case opDropOutput:
			if len(g.Output) > 0 {
				i := pick(len(g.Output), b)
				g.Output = append(g.Output[:i:i], g.Output[i+1:]...)
			}
		case opToGraphInput:
			if len(n.Input) > 0 && len(g.Input) > 0 {
				n.Input[pick(len(n.Input), b)] = g.Input[pick(len(g.Input), c)].GetName()
			}
		case opSelfLoop:
			if len(n.Input) > 0 && len(n.Output) > 0 {
				n.Input[pick(len(n.Input), b)] = n.Output[0]
			}
		}
	}
	return m
}

// findBounded runs discover.Find with a time limit.
func findBounded(t *testing.T, m *pb.ModelProto) (*discover.Stack, error) {
	t.Helper()
	type result struct {
		s   *discover.Stack
		err error
		pv  any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if pv := recover(); pv != nil {
				r.pv = pv
			}
			done <- r
		}()
		r.s, r.err = discover.Find(m)
	}()
	select {
	case r := <-done:
		if r.pv != nil {
			t.Fatalf("discover.Find panicked: %v", r.pv)
		}
		return r.s, r.err
	case <-time.After(findTimeout):
		t.Fatalf("discover.Find did not return within %v", findTimeout)
	}
	return nil, nil
}

// definedValues is every name the graph defines: inputs, initializers, node outputs.
func definedValues(m *pb.ModelProto) map[string]bool {
	d := map[string]bool{}
	for _, vi := range m.Graph.Input {
		d[vi.GetName()] = true
	}
	for _, t := range m.Graph.Initializer {
		d[t.GetName()] = true
	}
	for _, n := range m.Graph.Node {
		for _, o := range n.Output {
			d[o] = true
		}
	}
	return d
}

// checkStack checks what Find promises of a stack it returns.
func checkStack(t *testing.T, m *pb.ModelProto, s *discover.Stack) {
	t.Helper()
	if s == nil {
		t.Fatal("Find returned neither a stack nor an error")
	}
	L := len(s.Layers)
	if L == 0 || len(s.Hidden) != L+1 {
		t.Fatalf("%d layers with %d stream values, want L >= 1 and L+1", L, len(s.Hidden))
	}
	def := definedValues(m)
	for i, h := range s.Hidden {
		if !def[h] {
			t.Errorf("h_%d = %q is not a value of the graph", i, h)
		}
	}
	for i, l := range s.Layers {
		if l.Index != i || l.Input != s.Hidden[i] || l.Output != s.Hidden[i+1] {
			t.Errorf("layer %d: index %d, %q -> %q; want %q -> %q", i, l.Index, l.Input, l.Output, s.Hidden[i], s.Hidden[i+1])
		}
		for _, n := range l.Nodes {
			if n < 0 || n >= len(m.Graph.Node) {
				t.Errorf("layer %d: node index %d out of range (%d nodes)", i, n, len(m.Graph.Node))
			}
		}
		if len(l.Params) != len(s.Layers[0].Params) {
			t.Errorf("layer %d has %d parameter slots, layer 0 has %d", i, len(l.Params), len(s.Layers[0].Params))
		}
		for _, p := range l.Params {
			if !def[p.Name] {
				t.Errorf("layer %d: parameter %q is not a value of the graph", i, p.Name)
			}
			for _, u := range p.Uses {
				if u.Node < 0 || u.Node >= len(m.Graph.Node) {
					t.Errorf("layer %d: parameter %q used by node index %d out of range", i, p.Name, u.Node)
				}
			}
		}
	}
}

func FuzzFind(f *testing.F) {
	// Seeds: each base unchanged, and a few programs of every mutation.
	for i := range bases(f) {
		f.Add(uint8(i), []byte{})
		for op := range opCount {
			f.Add(uint8(i), []byte{byte(op), 40, 1, 7})
			f.Add(uint8(i), []byte{byte(op), 90, 0, 200, byte(op + 1), 33, 2, 61})
		}
	}
	f.Fuzz(func(t *testing.T, base uint8, prog []byte) {
		bs := bases(t)
		if len(prog) > 64 { // a few mutations at a time keep each run fast
			prog = prog[:64]
		}
		orig := bs[int(base)%len(bs)]
		m := mutate(orig, prog)
		snapshot := proto.Clone(m)
		s, err := findBounded(t, m)
		if !proto.Equal(m, snapshot) {
			t.Fatal("discover.Find modified its input model")
		}
		if err != nil {
			if msg := err.Error(); msg == "" || strings.Contains(msg, "\n") {
				t.Errorf("error is empty or not one line: %q", msg)
			}
			return
		}
		checkStack(t, m, s)
		again, err := findBounded(t, m)
		if err != nil {
			t.Fatalf("second Find on the same model failed: %v", err)
		}
		if !reflect.DeepEqual(s, again) {
			t.Errorf("two Finds on the same model gave different stacks")
		}
	})
}

// TestFindMutationsSample runs a fixed sample of mutation programs on
// every base (fast; runs with -short), so that every `go test` exercises the
// mutator even where fuzzing is not run.
func TestFindMutationsSample(t *testing.T) {
	bs := bases(t)
	seed := uint32(1)
	next := func() byte { seed = seed*1664525 + 1013904223; return byte(seed >> 24) }
	for i := range bs {
		for k := range 12 {
			prog := make([]byte, 4*(1+k%4))
			for j := range prog {
				prog[j] = next()
			}
			t.Run(fmt.Sprintf("base%d/%d", i, k), func(t *testing.T) {
				m := mutate(bs[i], prog)
				s, err := findBounded(t, m)
				if err == nil {
					checkStack(t, m, s)
				} else if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
			})
		}
	}
}
