// Package rusage reads what this process has used so far: CPU time and peak
// memory, for the benchmarks and measurements, which report CPU seconds
// because wall-clock time does not hold on a shared machine.
package rusage

import (
	"syscall"
	"time"
)

// CPU is the CPU time (user + system, all threads) this process has used so
// far; 0 where the system does not say.
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSS is this process's maximum resident set size in bytes (children
// excluded); 0 where the system does not say.
func PeakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}
