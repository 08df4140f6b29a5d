package ints

import (
	"reflect"
	"testing"
)

func TestAsInt64s(t *testing.T) {
	own := []int64{-1, 0, 1 << 40}
	for _, c := range []struct {
		data any
		want []int64
		ok   bool
	}{
		{own, own, true},
		{[]int32{-2, 3}, []int64{-2, 3}, true},
		{[]int16{-32768}, []int64{-32768}, true},
		{[]int8{-128, 127}, []int64{-128, 127}, true},
		{[]uint8{255}, []int64{255}, true},
		{[]uint16{65535}, []int64{65535}, true},
		{[]uint32{1<<32 - 1}, []int64{1<<32 - 1}, true},
		{[]bool{true, false}, []int64{1, 0}, true},
		{[]uint64{1}, nil, false},
		{[]float32{1}, nil, false},
		{nil, nil, false},
	} {
		got, ok := AsInt64s(c.data)
		if ok != c.ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("AsInt64s(%T %v) = %v, %v, want %v, %v", c.data, c.data, got, ok, c.want, c.ok)
		}
	}
	if got, _ := AsInt64s(own); &got[0] != &own[0] {
		t.Error("AsInt64s of an []int64 copied it")
	}
}
