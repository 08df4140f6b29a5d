// Command npyiocompare measures codeberg.org/sbinet/npyio against this
// repository's npy package on the hostile and malformed inputs npy's tests
// and fuzz corpus hold, and on the speed of reading a large float32 array.
// Its findings are in docs/design/npy.md. It is a separate module so that
// npyio is not a dependency of onnxslm:
//
//	cd npy/npyiocompare && go run .
//
// Each input is decoded in a child process whose address space is limited
// (RLIMIT_AS, 2 GiB), so an allocation a header asks for but the input does
// not hold shows as a crash instead of taking the machine's memory.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	npyio "codeberg.org/sbinet/npyio/npy"
	"github.com/onnxslm/onnxslm/npy"
)

type input struct {
	name string
	data []byte
}

// v1 builds a version-1.0 file with the given header dict and data.
func v1(dict string, data []byte) []byte {
	h := dict
	for (10+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	return append(append(b, h...), data...)
}

func inputs() []input {
	valid := v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", make([]byte, 24))
	in := []input{
		{"valid <f4 [2 3]", valid},
		{"empty", []byte{}},
		{"not npy", []byte("hello, world")},
		{"version 4.0", []byte("\x93NUMPY\x04\x00\x00\x00")},
		{"truncated header", valid[:40]},
		{"truncated data (1 byte short)", valid[:len(valid)-1]},
		{"data missing entirely", valid[:len(valid)-24]},
		{"trailing byte", append(append([]byte{}, valid...), 0)},
		{"v2 header length 4 GiB over 12 bytes", []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff")},
		{"v2 header length 1 GiB over 12 bytes", []byte("\x93NUMPY\x02\x00\x00\x00\x00\x40")},
		{"header without newline", append([]byte("\x93NUMPY\x01\x00\x04\x00"), "{}  "...)},
		{"header '{}'", v1("{}", nil)},
		{"shape [1e12 1e7] <f4 (overflows to a small count)", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 10000000), }", nil)},
		{"shape [2^62 4] <f4 (count wraps to 0)", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", nil)},
		{"shape [1e6 1e6] <f8 (8 TB) over 64 bytes", v1("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }", make([]byte, 64))},
		{"shape [2^20 2^20] <i8 (8 TiB) over 64 bytes", v1("{'descr': '<i8', 'fortran_order': False, 'shape': (1048576, 1048576), }", make([]byte, 64))},
		{"shape [1e8] <f4 (400 MB) over 64 bytes", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000,), }", make([]byte, 64))},
		{"dimension 99999999999999999999", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", nil)},
		{"negative dimension", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", nil)},
		{"negative dimensions (-2, -3): count 6", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, -3), }", make([]byte, 24))},
		{"missing key", v1("{'descr': '<f4', 'shape': (1,), }", make([]byte, 4))},
		{"extra key", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", make([]byte, 4))},
		{"duplicate key", v1("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", make([]byte, 4))},
		{"shape (3) not a tuple", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", make([]byte, 12))},
		{"garbage after '}'", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", make([]byte, 4))},
		{"keys reordered (valid NumPy)", v1("{'shape': (1,), 'fortran_order': False, 'descr': '<f4', }", make([]byte, 4))},
		{"no space after ':' (valid Python)", v1("{'descr':'<f4', 'fortran_order':False, 'shape':(1,), }", make([]byte, 4))},
		{"descr '|O' (object)", v1("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", make([]byte, 8))},
		{"shape ')' garbage", v1("{'descr': '<f4', 'fortran_order': False, 'shape': ), }", nil)},
	}
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "*.npy"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			in = append(in, input{"testdata/" + filepath.Base(p), b})
		}
	}
	corpus, _ := filepath.Glob(filepath.Join("..", "testdata", "fuzz", "FuzzDecode", "*"))
	for _, p := range corpus {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// go test fuzz v1\n[]byte("...")
		lines := strings.SplitN(string(b), "\n", 2)
		if len(lines) == 2 {
			lit := strings.TrimSpace(lines[1])
			lit = strings.TrimSuffix(strings.TrimPrefix(lit, "[]byte("), ")")
			if s, err := strconv.Unquote(lit); err == nil {
				in = append(in, input{"fuzz corpus " + filepath.Base(p), []byte(s)})
			}
		}
	}
	return in
}

// decodeNpyio reads data with npyio the way npy.Decode would use it: the
// header first, then the element type its descr names.
func decodeNpyio(data []byte) (n int, err error) {
	r, err := npyio.NewReader(bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	// npyio keeps the descr's quotes: "'<f4'".
	switch strings.Trim(r.Header.Descr.Type, "'\"") {
	case "<f4":
		var v []float32
		err = r.Read(&v)
		return len(v), err
	case "<f8":
		var v []float64
		err = r.Read(&v)
		return len(v), err
	case "<i8":
		var v []int64
		err = r.Read(&v)
		return len(v), err
	}
	var a npyio.Array
	err = r.Read(&a)
	if err == nil {
		n = 1
		for _, d := range a.Shape() {
			n *= d
		}
	}
	return n, err
}

func decodeOurs(data []byte) (int, error) {
	a, err := npy.Decode(bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	return a.Len(), nil
}

// child decodes input i with lib and prints "ok N ALLOC", "err ALLOC MSG" or
// "panic MSG".
func child(lib string, i int) {
	lim := syscall.Rlimit{Cur: 2 << 30, Max: 2 << 30}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(1)
	}
	data := inputs()[i].data
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	defer func() {
		if p := recover(); p != nil {
			fmt.Printf("panic %v\n", p)
		}
	}()
	var n int
	var err error
	if lib == "npyio" {
		n, err = decodeNpyio(data)
	} else {
		n, err = decodeOurs(data)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if err != nil {
		fmt.Printf("err %d %s\n", alloc, oneLine(err.Error()))
		return
	}
	fmt.Printf("ok %d %d\n", n, alloc)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 90 {
		s = s[:90] + "..."
	}
	return s
}

func verdict(lib string, i int) string {
	cmd := exec.Command(os.Args[0], "child", lib, strconv.Itoa(i))
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		first := strings.SplitN(s, "\n", 2)[0]
		return fmt.Sprintf("CRASH (%v): %s", err, oneLine(first))
	}
	f := strings.SplitN(s, " ", 3)
	switch f[0] {
	case "ok":
		return fmt.Sprintf("accepted, %s elements, %s B allocated", f[1], f[2])
	case "err":
		msg := ""
		if len(f) > 2 {
			msg = f[2]
		}
		return fmt.Sprintf("error, %s B allocated: %s", f[1], msg)
	case "panic":
		return "PANIC: " + oneLine(strings.TrimPrefix(s, "panic "))
	}
	return s
}

func speed() {
	const n = 16 << 20 // 16 Mi float32: 64 MiB of data
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i)))
	}
	a, err := npy.New([]int{n}, vals)
	if err != nil {
		panic(err)
	}
	var buf bytes.Buffer
	if err := npy.Encode(&buf, a); err != nil {
		panic(err)
	}
	data := buf.Bytes()
	// throughput benchmarks op, reporting speed over the file's bytes.
	throughput := func(op func() error) testing.BenchmarkResult {
		return testing.Benchmark(func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := op(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	ours := throughput(func() error {
		_, err := npy.Decode(bytes.NewReader(data))
		return err
	})
	theirs := throughput(func() error {
		var v []float32
		return npyio.Read(bufio.NewReader(bytes.NewReader(data)), &v)
	})
	var enc bytes.Buffer
	writeTheirs := throughput(func() error {
		enc.Reset()
		return npyio.Write(&enc, vals)
	})
	writeOurs := throughput(func() error {
		enc.Reset()
		return npy.Encode(&enc, a)
	})
	fmt.Printf("\nread 64 MiB <f4 [16Mi] from memory:\n  npy   %s %s\n  npyio %s %s\n", ours, ours.MemString(), theirs, theirs.MemString())
	fmt.Printf("write the same:\n  npy   %s %s\n  npyio %s %s\n", writeOurs, writeOurs.MemString(), writeTheirs, writeTheirs.MemString())
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "child" {
		i, _ := strconv.Atoi(os.Args[3])
		child(os.Args[2], i)
		return
	}
	for i, in := range inputs() {
		fmt.Printf("%s (%d bytes)\n  npy:   %s\n  npyio: %s\n", in.name, len(in.data), verdict("npy", i), verdict("npyio", i))
	}
	if len(os.Args) < 2 || os.Args[1] != "-nospeed" {
		speed()
	}
}
