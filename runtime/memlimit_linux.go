package runtime

import "syscall"

// memoryLimit is the least of physical memory and the address-space and data
// limits of the process (ulimit -v, -d).
func memoryLimit() uint64 {
	limit := uint64(1) << 62
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil && si.Totalram > 0 {
		limit = min(limit, uint64(si.Totalram)*uint64(si.Unit))
	}
	for _, res := range []int{syscall.RLIMIT_AS, syscall.RLIMIT_DATA} {
		var rl syscall.Rlimit
		if syscall.Getrlimit(res, &rl) == nil && rl.Cur > 0 && rl.Cur < limit {
			limit = rl.Cur
		}
	}
	return limit
}
