//go:build unix

package onnx_test

import "syscall"

// cpuNanos is the CPU time (user and system) this process has used, so that
// a benchmark can report CPU per element on a machine whose cores are shared.
func cpuNanos() int64 {
	var u syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &u) != nil {
		return 0
	}
	return u.Utime.Nano() + u.Stime.Nano()
}
