package runtime

import (
	"fmt"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// If (opset 11..21: tensor outputs; optional and sequence outputs are not
// supported) runs its then_branch when cond is true, else its else_branch.
// Only the taken branch runs. A branch is compiled into a Session of its own
// over a graph that declares what the branch reads of the enclosing scope: the
// enclosing graph's initializers become the branch's initializers (the same
// tensors, decoded once through Options.Constants), every other value it reads
// (graph inputs, node outputs) becomes a branch input, fed from the If node's
// implicit inputs, which New appends after cond (implicitInputs) so that
// the plan computes them before the If and keeps them alive until it.

// implicitInputs appends to an If node's inputs the values of the enclosing
// graph its branches read, other than initializers.
func (s *Session) implicitInputs(n *node) error {
	if n.op != "If" || opDomain(n.proto.GetDomain()) != "" {
		return nil
	}
	for _, ref := range graph.OuterRefs(n.proto.GetAttribute()) {
		i, ok := s.index[ref]
		if !ok {
			return fmt.Errorf("runtime: node %q: a branch reads %q, which is no graph input, initializer or node output", n.label(), ref)
		}
		if s.inits[i] == nil {
			n.in = append(n.in, i)
		}
	}
	return nil
}

// branch is one compiled If branch.
type branch struct {
	name  string
	sess  *Session
	feeds []string // branch inputs, in order
	from  []int    // for each feed, the If kernel's input that holds it
	fetch []string // branch outputs
}

func compileIf(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("then_branch", "else_branch"); err != nil {
		return nil, err
	}
	if n := len(c.n.proto.GetInput()); n != 1 {
		return nil, fmt.Errorf("%d inputs, want 1 (cond)", n)
	}
	var br [2]*branch // else, then
	for i, name := range []string{"else_branch", "then_branch"} {
		a := c.attrs.m[name]
		if a == nil || a.GetType() != pb.AttributeProto_GRAPH || a.G == nil {
			return nil, fmt.Errorf("attribute %s: want a GRAPH", name)
		}
		b, err := c.s.compileBranch(name, a.G, c.n)
		if err != nil {
			return nil, err
		}
		br[i] = b
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		cond := in[0]
		if cond.dtype != Bool || numel(cond.shape) != 1 {
			return nil, fmt.Errorf("cond must be one bool, got %v %v", cond.dtype, cond.shape)
		}
		b := br[0]
		if cond.data.([]bool)[0] {
			b = br[1]
		}
		return b.run(ec, in)
	}, nil
}

// compileBranch compiles g, a branch of the If node n.
func (s *Session) compileBranch(name string, g *pb.GraphProto, n *node) (*branch, error) {
	if len(g.GetInput()) > 0 {
		return nil, fmt.Errorf("%s declares %d inputs; an If branch takes none", name, len(g.GetInput()))
	}
	if len(g.GetOutput()) != len(n.out) {
		return nil, fmt.Errorf("%s has %d outputs, the node %d", name, len(g.GetOutput()), len(n.out))
	}
	if len(g.GetSparseInitializer()) > 0 {
		return nil, fmt.Errorf("%s: sparse initializers are not supported", name)
	}
	sub := &pb.GraphProto{
		Name:        g.Name,
		Node:        g.GetNode(),
		Initializer: append([]*pb.TensorProto(nil), g.GetInitializer()...),
		Output:      g.GetOutput(),
		ValueInfo:   g.GetValueInfo(),
	}
	b := &branch{name: name}
	explicit := len(n.proto.GetInput())
	for _, ref := range graph.OuterRefs([]*pb.AttributeProto{onnx.AttrGraph(name, g)}) {
		i := s.index[ref] // implicitInputs checked that it exists
		if t := s.inits[i]; t != nil {
			sub.Initializer = append(sub.Initializer, t)
			continue
		}
		j := explicit
		for j < len(n.in) && n.in[j] != i {
			j++
		}
		if j == len(n.in) {
			return nil, fmt.Errorf("%s reads %q, which the node does not bind", name, ref)
		}
		sub.Input = append(sub.Input, &pb.ValueInfoProto{Name: proto.String(ref)})
		b.feeds = append(b.feeds, ref)
		b.from = append(b.from, j)
	}
	for _, o := range g.GetOutput() {
		b.fetch = append(b.fetch, o.GetName())
	}
	m := &pb.ModelProto{IrVersion: s.model.IrVersion, OpsetImport: s.model.GetOpsetImport(), Graph: sub}
	sess, err := New(m, s.opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	b.sess = sess
	return b, nil
}

// run executes the branch on the If kernel's inputs.
func (b *branch) run(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
	feeds := make(map[string]*Tensor, len(b.feeds))
	for k, name := range b.feeds {
		if in[b.from[k]] == nil {
			return nil, fmt.Errorf("%s: %q is not available", b.name, name)
		}
		feeds[name] = in[b.from[k]].widened()
	}
	res, err := b.sess.RunContext(ec.ctx, feeds, b.fetch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.name, err)
	}
	out := make([]*Tensor, len(b.fetch))
	for i, name := range b.fetch {
		out[i] = res[name]
	}
	return out, nil
}

// compileIfRow is If's row in opTable. It calls compileIf through ifCompile,
// set in init: compileIf compiles the branches with New, which reads the
// table, and Go refuses a table whose initialization refers back to itself.
func compileIfRow(c *compileCtx) (kernel, error) { return ifCompile(c) }

var ifCompile func(c *compileCtx) (kernel, error)

func init() { ifCompile = compileIf }
