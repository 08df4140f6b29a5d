package runtime

import "testing"

// TestOpTable checks that opTable has one row per op, in name order, and that
// every simple unary kernel has its row (and every compileUnary row a kernel).
func TestOpTable(t *testing.T) {
	for name, table := range map[string][]opDef{"opTable": opTable, "msOpTable": msOpTable} {
		for i := 1; i < len(table); i++ {
			if table[i-1].name >= table[i].name {
				t.Errorf("%s: %q before %q (want strictly increasing names)", name, table[i-1].name, table[i].name)
			}
		}
	}
	if len(ops) != len(opTable)+len(msOpTable) {
		t.Errorf("ops has %d entries, the tables %d rows", len(ops), len(opTable)+len(msOpTable))
	}
	for _, u := range unaryDefs {
		d := ops[opKey{"", u.name}]
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
