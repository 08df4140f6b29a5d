//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package onnx

import (
	"errors"
	"os"
)

// mmapSupported is false here: Load reads external data into memory
// (one ReadAt per tensor), as it did before memory mapping.
const mmapSupported = false

func mapFile(*os.File, int64) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapFile([]byte) error { return nil }

func releasePages([]byte) error { return nil }
