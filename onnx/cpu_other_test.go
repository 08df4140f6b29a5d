//go:build !unix

package onnx_test

// cpuNanos is 0 where getrusage is missing: the cpu-ns/elem metric then reads 0.
func cpuNanos() int64 { return 0 }
