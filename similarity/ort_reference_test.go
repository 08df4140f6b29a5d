package similarity

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// withOutputs writes a copy of a shared model that also outputs the named
// values (name-only ValueInfos: onnxruntime infers their types).
func withOutputs(t *testing.T, name string, values []string) string {
	t.Helper()
	return judge.EditedModel(t, name, "boundaries", func(m *pb.ModelProto) {
		for _, v := range values {
			m.Graph.Output = append(m.Graph.Output, &pb.ValueInfoProto{Name: proto.String(v)})
		}
	})
}

// TestCKAMatrixMatchesReference runs each shared model in onnxruntime on all
// 16 calibration rows with the layer boundaries as extra outputs, and checks
// the linear CKA matrix against NAME.cka.npy (within 1e-4) and the Block
// Influence of every layer against NAME.slm.json (within 1e-5).
func TestCKAMatrixMatchesReference(t *testing.T) {
	ort := judge.ORT(t)
	calib, err := npy.Read(testenv.TestFile(t, "tokens/calib_train_16x128.npy"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"llama8", "gpt2_6"} {
		t.Run(name, func(t *testing.T) {
			values, _ := testenv.Streams(t, name)
			model := withOutputs(t, name, values)
			out, err := ort.Run(model, map[string]*npy.Array{"input_ids": calib}, values)
			if err != nil {
				t.Fatal(err)
			}
			N, T := calib.Shape[0], calib.Shape[1]
			L := len(values) - 1
			hidden := make([][]float32, L+1) // [i] enters layer i, [N×T×d]
			var d int
			for i, v := range values {
				a := out[v]
				if len(a.Shape) != 3 || a.Shape[0] != N || a.Shape[1] != T {
					t.Fatalf("%s: shape %v, want [%d, %d, d]", v, a.Shape, N, T)
				}
				d = a.Shape[2]
				hidden[i], _ = a.Float32s()
			}
			// Rows 0-1 must reproduce NAME.hidden.npy.
			ref, err := npy.Read(testenv.TestFile(t, name+".hidden.npy"))
			if err != nil {
				t.Fatal(err)
			}
			rf, _ := ref.Float32s()
			var maxHidden float64
			for i := 0; i <= L; i++ {
				for k := 0; k < 2*T*d; k++ {
					maxHidden = math.Max(maxHidden, math.Abs(float64(hidden[i][k]-rf[i*2*T*d+k])))
				}
			}
			if maxHidden > 1e-4 {
				t.Errorf("max |ORT hidden states - %s.hidden.npy| = %g, want <= 1e-4", name, maxHidden)
			}

			m, err := NewCKAMatrix(L, LinearKernel)
			if err != nil {
				t.Fatal(err)
			}
			bi := make([]BlockInfluenceMean, L)
			for r := 0; r < N; r++ {
				mb := make([][]float32, L)
				for l := 0; l < L; l++ {
					mb[l] = hidden[l+1][r*T*d : (r+1)*T*d]
					if err := bi[l].Add(hidden[l][r*T*d:(r+1)*T*d], mb[l], d); err != nil {
						t.Fatal(err)
					}
				}
				if err := m.Add(T, mb); err != nil {
					t.Fatal(err)
				}
			}
			got := m.Matrix()
			want := readMatrix(t, testenv.TestFile(t, name+".cka.npy"))
			var maxCKA float64
			for a := range want {
				for b := range want[a] {
					maxCKA = math.Max(maxCKA, math.Abs(got[a][b]-want[a][b]))
				}
			}
			wantBI := slmBlockInfluence(t, name)
			var maxBI float64
			for l := range bi {
				maxBI = math.Max(maxBI, math.Abs(bi[l].Value()-wantBI[l]))
			}
			t.Logf("%s: 16 rows via onnxruntime: max |CKA - cka.npy| = %.3g; max |BI - slm.json| = %.3g; max |hidden - hidden.npy| = %.3g", name, maxCKA, maxBI, maxHidden)
			if maxCKA > 1e-4 {
				t.Errorf("max |CKA - %s.cka.npy| = %g, want <= 1e-4\ngot\n%swant\n%s", name, maxCKA, format(got), format(want))
			}
			if maxBI > 1e-5 {
				t.Errorf("max |Block Influence - %s.slm.json| = %g, want <= 1e-5 (slm.json has 6 decimals)", name, maxBI)
			}
		})
	}
}

func slmBlockInfluence(t *testing.T, name string) []float64 {
	t.Helper()
	b, err := os.ReadFile(testenv.TestFile(t, name+".slm.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		BI []float64 `json:"block_influence"`
	}
	if err := json.Unmarshal(b, &s); err != nil || len(s.BI) == 0 {
		t.Fatal(fmt.Errorf("%s.slm.json: block_influence: %v", name, err))
	}
	return s.BI
}
