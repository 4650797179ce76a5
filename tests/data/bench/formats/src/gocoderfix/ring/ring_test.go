package ring

import "testing"

func TestPushWraps(t *testing.T) {
	r := New(3)
	for i := 0; i < 5; i++ {
		r.Push(i)
	}
	if r.Len() != 3 {
		t.Fatalf("Len = %d, want 3", r.Len())
	}
	if r.buf[0] != 3 || r.buf[1] != 4 || r.buf[2] != 2 {
		t.Fatalf("buf = %v, want [3 4 2]", r.buf)
	}
}

func TestLenBeforeFull(t *testing.T) {
	r := New(4)
	r.Push(7)
	r.Push(8)
	if r.Len() != 2 {
		t.Fatalf("Len = %d, want 2", r.Len())
	}
}
