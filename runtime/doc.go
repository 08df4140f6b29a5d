// Package runtime executes ONNX graphs of decoder-only language models in Go:
// float32 compute, int64 shape arithmetic, partial runs from intermediate
// values, taps on any value, and caching of the shape-only parts of a graph.
package runtime
