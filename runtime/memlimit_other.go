//go:build !linux

package runtime

// memoryLimit is a fixed 64 GiB where the process's limits are not queried.
func memoryLimit() uint64 { return 64 << 30 }
