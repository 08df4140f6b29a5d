// Package units writes quantities for people: byte counts in binary units,
// as the CLI's reports and the runtime's memory errors print them.
package units

import "fmt"

// Bytes writes a byte count in binary units: 1536 → "1.5 KiB", 512 → "512 B".
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
