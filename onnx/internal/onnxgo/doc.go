// Package onnxgo cross-checks package onnx's tensor decoding against
// github.com/owulveryck/onnx-go, an independent implementation, in its tests.
// It has no code of its own.
package onnxgo
