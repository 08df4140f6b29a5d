package graph

import "github.com/onnxslm/onnxslm/onnx/pb"

// OuterRefs returns, sorted, the names that the subgraph attributes among
// attrs (an If's then_branch and else_branch, a Loop's body) read from the
// enclosing scopes: names that no subgraph (nor a subgraph of it) defines as
// an input, initializer or node output. The runtime and the merged-decoder
// code use it to bind a branch to the values of the graph around it.
func OuterRefs(attrs []*pb.AttributeProto) []string { return outerRefs(attrs) }
