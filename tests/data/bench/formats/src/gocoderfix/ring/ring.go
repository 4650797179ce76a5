// Package ring is a fixed-size ring of ints, written for gocoder's synth-fix fixture.
package ring

// Ring keeps the last len(buf) values pushed.
type Ring struct {
	buf  []int
	next int
	full bool
}

// New returns a ring of n slots.
func New(n int) *Ring {
	return &Ring{buf: make([]int, n)}
}

// Push adds v, dropping the oldest value when the ring is full.
func (r *Ring) Push(v int) {
	r.buf[r.next] = v
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// Len reports how many values the ring holds.
func (r *Ring) Len() int {
	if r.full {
		return len(r.buf)
	}
	return r.next
}
