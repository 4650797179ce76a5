package gocheck

import "testing"

// TestCodeHash: a declaration's code hash ignores comments and layout, and sees every token,
// literal contents included.
func TestCodeHash(t *testing.T) {
	hash := func(src string) string {
		r := Check([]byte(src), Options{Kind: KindDecls, Decls: true, CodeHash: true})
		if !r.OK || len(r.Decls) != 1 || len(r.Decls[0].Code) != 16 {
			t.Fatalf("%q: %+v", src, r)
		}
		return r.Decls[0].Code
	}
	base := hash("func f(a, b int) int {\n\treturn a + b // sum\n}")
	for _, same := range []string{
		"func f(a, b int) int { return a + b }",
		"func f(a, b int) int {\n\t/* the sum */ return a+b\n}",
		"func f(a, b int) int {\n\treturn a + b;\n}",
	} {
		if h := hash(same); h != base {
			t.Errorf("%q: %s, want %s (comments and layout only)", same, h, base)
		}
	}
	for _, other := range []string{
		"func f(a, b int) int {\n\treturn a - b\n}",
		"func f(a, b int) int {\n\treturn b + a\n}",
		"func g(a, b int) int {\n\treturn a + b\n}",
	} {
		if hash(other) == base {
			t.Errorf("%q: same hash as a different function", other)
		}
	}
	if hash(`var s = "a  b"`) == hash(`var s = "a b"`) {
		t.Error("a space inside a string literal is code")
	}
	if r := Check([]byte("func f() {}"), Options{Kind: KindDecls, Decls: true}); r.Decls[0].Code != "" {
		t.Errorf("hash computed without being asked: %q", r.Decls[0].Code)
	}
}
