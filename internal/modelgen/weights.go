package modelgen

import (
	"encoding/binary"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// rng is a splitmix64 stream. Each tensor gets its own stream, keyed by the
// model seed and the tensor's logical name (not its position in the graph), so
// a weight has the same values whatever else the config changes: the same seed
// with TransposedWeights on or off gives the same function.
//
// Only integer arithmetic and exactly rounded float64 additions and products
// are used, so the values do not depend on the platform's math library.
type rng struct{ s uint64 }

func newRNG(seed int64, key string) *rng {
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	r := &rng{s: h ^ uint64(seed)*0x9E3779B97F4A7C15}
	r.next() // decorrelate neighbouring seeds
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// uniform returns a value in [0, 1) with 53 random bits.
func (r *rng) uniform() float64 { return float64(r.next()>>11) * 0x1p-53 }

// normal returns an approximately standard normal value (Irwin–Hall sum of 12
// uniforms, mean 0, variance 1, bounded by ±6).
func (r *rng) normal() float64 {
	s := 0.0
	for i := 0; i < 12; i++ {
		s += r.uniform()
	}
	return s - 6
}

// normalAt returns what the (i+1)-th normal() call of r returns, r fresh
// from newRNG: splitmix64 is a counter (the k-th next() mixes s + k·γ), so
// any value of a stream can be computed alone, bit-identical to drawing the
// stream in order.
func (r *rng) normalAt(i int) float64 {
	base := r.s + uint64(12*i)*0x9E3779B97F4A7C15
	s := 0.0
	for j := uint64(1); j <= 12; j++ {
		z := base + j*0x9E3779B97F4A7C15
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		s += float64((z^z>>31)>>11) * 0x1p-53
	}
	return s - 6
}

// normalsT returns normals(seed, key, rows*cols, 0, std), a row-major
// [rows, cols] matrix, transposed to [cols, rows], without holding the
// untransposed copy.
func normalsT(seed int64, key string, rows, cols int, std float64) []float32 {
	r := newRNG(seed, key)
	out := make([]float32, rows*cols)
	for j := 0; j < cols; j++ {
		for i := 0; i < rows; i++ {
			out[j*rows+i] = float32(0 + float64(std*r.normalAt(i*cols+j)))
		}
	}
	return out
}

// normals returns n values mean + std·N(0,1) rounded to float32.
func normals(seed int64, key string, n int, mean, std float64) []float32 {
	r := newRNG(seed, key)
	out := make([]float32, n)
	for i := range out {
		// The conversions stop the compiler from fusing the product and sum.
		out[i] = float32(mean + float64(std*r.normal()))
	}
	return out
}

// tensor encodes data (the Go slice type of dt, float32 for FLOAT16 and BFLOAT16) as a
// tensor with little-endian raw_data; an empty name is left unset, as in
// torch's Constant values. A length that does not match dims is a bug here.
func tensor(name string, dt pb.TensorProto_DataType, dims []int, data any) *pb.TensorProto {
	if f, ok := data.([]float32); ok && (dt == pb.TensorProto_FLOAT16 || dt == pb.TensorProto_BFLOAT16) {
		narrow := onnx.Float32ToFloat16
		if dt == pb.TensorProto_BFLOAT16 {
			narrow = onnx.Float32ToBFloat16
		}
		// Narrowed straight into raw_data (what EncodeTensor would write for
		// the []uint16 bits), so a large tensor is not held twice more.
		raw := make([]byte, 2*len(f))
		for i, v := range f {
			binary.LittleEndian.PutUint16(raw[2*i:], narrow(v))
		}
		t := &pb.TensorProto{DataType: proto.Int32(int32(dt)), RawData: raw}
		for _, v := range dims {
			t.Dims = append(t.Dims, int64(v))
		}
		if name != "" {
			t.Name = proto.String(name)
		}
		return t
	}
	d := make([]int64, len(dims))
	for i, v := range dims {
		d[i] = int64(v)
	}
	t, err := onnx.EncodeTensor(name, &onnx.Tensor{DType: dt, Dims: d, Data: data})
	if err != nil {
		panic("modelgen: " + err.Error()) // programming error: the builder passed a wrong length
	}
	if name == "" {
		t.Name = nil
	}
	return t
}

func tensorF32(name string, dims []int, data []float32) *pb.TensorProto {
	return tensor(name, pb.TensorProto_FLOAT, dims, data)
}

func tensorI64(name string, dims []int, data []int64) *pb.TensorProto {
	return tensor(name, pb.TensorProto_INT64, dims, data)
}
