package runtime

import "testing"

// TestOpTable checks that opTable has one row per op, in name order, and that
// every simple unary kernel has its row (and every compileUnary row a kernel).
func TestOpTable(t *testing.T) {
	for i := 1; i < len(opTable); i++ {
		if opTable[i-1].name >= opTable[i].name {
			t.Errorf("opTable: %q before %q (want strictly increasing names)", opTable[i-1].name, opTable[i].name)
		}
	}
	if len(ops) != len(opTable) {
		t.Errorf("ops has %d entries, opTable %d rows", len(ops), len(opTable))
	}
	for _, u := range unaryDefs {
		d := ops[u.name]
		if d == nil {
			t.Errorf("unary kernel %s has no opTable row", u.name)
			continue
		}
		if _, err := d.compile(&compileCtx{attrs: attrs{}}); err != nil {
			t.Errorf("%s: %v", u.name, err)
		}
	}
	if _, err := compileUnary("NoSuchOp")(&compileCtx{attrs: attrs{}}); err == nil {
		t.Error("compileUnary of an unknown name: want an error")
	}
}
