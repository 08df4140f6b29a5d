//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package onnx

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
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

// releasePages drops b's pages from the process (MADV_DONTNEED): they stay
// in the page cache, and the next read of b maps them back (the mapping is
// of a file, so nothing is lost).
func releasePages(b []byte) error { return unix.Madvise(b, unix.MADV_DONTNEED) }
