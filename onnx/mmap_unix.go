//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package onnx

import (
	"errors"
	"os"
	"syscall"
)

// mmapSupported says whether external data is memory-mapped on this OS.
const mmapSupported = true

// mapFile maps size bytes of f read-only and shared: the pages are the page
// cache's, loaded on first touch and dropped under memory pressure (they are
// clean), and a write through the mapping faults instead of changing the
// bytes. The mapping outlives f's descriptor.
func mapFile(f *os.File, size int64) ([]byte, error) {
	if int64(int(size)) != size {
		return nil, errors.New("file too large to map on this platform") // 32-bit
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

func unmapFile(b []byte) error { return syscall.Munmap(b) }
