package onnx

import (
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// tensorFunc is called on each tensor of a model, with where describing its
// place ("initializer \"w\"", "node \"n\": attribute \"value\""). It returns the
// tensor to put in its place: t itself to leave it, or a new tensor.
type tensorFunc func(where string, field string, t *pb.TensorProto) (*pb.TensorProto, error)

var tensorDesc = (&pb.TensorProto{}).ProtoReflect().Descriptor()

// holdsTensors caches, per message type, whether a TensorProto can be reached
// from it, so that the walk skips types, shapes and string maps.
var holdsTensors sync.Map // protoreflect.FullName -> bool

func canHoldTensors(md protoreflect.MessageDescriptor) bool {
	if v, ok := holdsTensors.Load(md.FullName()); ok {
		return v.(bool)
	}
	seen := map[protoreflect.FullName]bool{}
	var visit func(md protoreflect.MessageDescriptor) bool
	visit = func(md protoreflect.MessageDescriptor) bool {
		if md.FullName() == tensorDesc.FullName() {
			return true
		}
		if seen[md.FullName()] {
			return false // on a cycle; another path decides
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := range fields.Len() {
			if sub := fields.Get(i).Message(); sub != nil && visit(sub) {
				return true
			}
		}
		return false
	}
	v := visit(md)
	holdsTensors.Store(md.FullName(), v)
	return v
}

// mapTensors calls f on every TensorProto reachable from msg (initializers,
// attribute tensors, sparse tensors, in subgraphs, functions and training
// info). Where f returns a different tensor, mapTensors returns a copy of msg in
// which only the path to it is copied (shallowly); msg itself is never
// modified. changed reports whether a copy was made.
func mapTensors(msg protoreflect.Message, where string, f tensorFunc) (out protoreflect.Message, changed bool, err error) {
	md := msg.Descriptor()
	var cp protoreflect.Message // the copy, made on the first change
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		sub := fd.Message()
		if sub == nil || !canHoldTensors(sub) || !msg.Has(fd) {
			continue
		}
		if fd.IsList() {
			list := msg.Get(fd).List()
			var newList protoreflect.List
			for j := range list.Len() {
				el := list.Get(j).Message()
				w := joinWhere(where, label(msg, fd, j, el))
				nel, ch, err := mapChild(el, w, fd, f)
				if err != nil {
					return nil, false, err
				}
				if ch && newList == nil {
					if cp == nil {
						cp = shallowCopy(msg)
					}
					newList = cp.NewField(fd).List()
					for k := range j {
						newList.Append(list.Get(k))
					}
				}
				if newList != nil {
					newList.Append(protoreflect.ValueOfMessage(nel))
				}
			}
			if newList != nil {
				cp.Set(fd, protoreflect.ValueOfList(newList))
			}
			continue
		}
		el := msg.Get(fd).Message()
		nel, ch, err := mapChild(el, joinWhere(where, label(msg, fd, -1, el)), fd, f)
		if err != nil {
			return nil, false, err
		}
		if ch {
			if cp == nil {
				cp = shallowCopy(msg)
			}
			cp.Set(fd, protoreflect.ValueOfMessage(nel))
		}
	}
	if cp == nil {
		return msg, false, nil
	}
	return cp, true, nil
}

func mapChild(el protoreflect.Message, where string, fd protoreflect.FieldDescriptor, f tensorFunc) (protoreflect.Message, bool, error) {
	if t, ok := el.Interface().(*pb.TensorProto); ok {
		nt, err := f(where, string(fd.Name()), t)
		if err != nil {
			return nil, false, err
		}
		return nt.ProtoReflect(), nt != t, nil
	}
	return mapTensors(el, where, f)
}

// shallowCopy returns a new message of msg's type whose fields hold the same
// values; lists are new lists holding the same elements, so that the copy's
// lists can be changed without touching msg. Unknown fields are kept.
func shallowCopy(msg protoreflect.Message) protoreflect.Message {
	cp := msg.New()
	msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsList() {
			src := v.List()
			dst := cp.NewField(fd).List()
			for i := range src.Len() {
				dst.Append(src.Get(i))
			}
			cp.Set(fd, protoreflect.ValueOfList(dst))
			return true
		}
		cp.Set(fd, v)
		return true
	})
	if u := msg.GetUnknown(); len(u) > 0 {
		cp.SetUnknown(u)
	}
	return cp
}

func joinWhere(a, b string) string {
	switch {
	case b == "":
		return a
	case a == "":
		return b
	case strings.HasSuffix(a, whereCut):
		return a // deep nesting: the path stays bounded, or a hostile file makes it quadratic
	case len(a)+len(b) > maxWhere:
		return a + whereCut
	}
	return a + ": " + b
}

// maxWhere bounds the length of a place description in messages.
const (
	maxWhere = 400
	whereCut = ": …"
)

// label describes element el of field fd of msg (index i, or -1 when the
// field is not a list) for error messages.
func label(msg protoreflect.Message, fd protoreflect.FieldDescriptor, i int, el protoreflect.Message) string {
	field := string(fd.Name())
	switch x := el.Interface().(type) {
	case *pb.TensorProto:
		switch {
		case field == "initializer":
			return fmt.Sprintf("initializer %q", x.GetName())
		case i >= 0:
			return fmt.Sprintf("tensor[%d] %q", i, x.GetName())
		case field == "t":
			if x.GetName() == "" {
				return "" // the attribute names it
			}
			return fmt.Sprintf("tensor %q", x.GetName())
		}
	case *pb.SparseTensorProto:
		if field == "sparse_initializer" {
			return fmt.Sprintf("sparse initializer %q", x.GetValues().GetName())
		}
	case *pb.NodeProto:
		if x.GetName() != "" {
			return fmt.Sprintf("node %q", x.GetName())
		}
		return fmt.Sprintf("node #%d (%s)", i, x.GetOpType())
	case *pb.AttributeProto:
		return fmt.Sprintf("attribute %q", x.GetName())
	case *pb.FunctionProto:
		return fmt.Sprintf("function %q", x.GetName())
	case *pb.GraphProto:
		if _, top := msg.Interface().(*pb.ModelProto); top {
			return "" // the main graph
		}
		return fmt.Sprintf("graph %q", x.GetName())
	}
	if i >= 0 {
		return fmt.Sprintf("%s[%d]", field, i)
	}
	return field
}
