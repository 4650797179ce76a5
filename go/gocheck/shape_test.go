package gocheck

import (
	"strings"
	"testing"
)

func TestShapeDropsNamesAndLayoutKeepsOperators(t *testing.T) {
	a, kind, ok := Shape([]byte("func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\t}\n\treturn b\n}\n"), "")
	if !ok || kind != KindDecls {
		t.Fatalf("ok=%v kind=%q", ok, kind)
	}
	// other names, other layout, a comment: the same shape
	b, _, _ := Shape([]byte("// Big picks.\nfunc Big(x, y int) int { if x > y { return x }; return y }"), "")
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Fatalf("shapes differ:\n%v\n%v", a, b)
	}
	// another operator: another shape
	c, _, _ := Shape([]byte("func Max(a, b int) int {\n\tif a < b {\n\t\treturn a\n\t}\n\treturn b\n}\n"), "")
	if strings.Join(a, " ") == strings.Join(c, " ") {
		t.Fatal("< and > gave the same shape")
	}
	want := "FuncDecl Ident FuncType FieldList Field Ident Ident Ident ) ) FieldList Field Ident ) ) )"
	if got := strings.Join(a, " "); !strings.HasPrefix(got, want) || !strings.Contains(got, "BinaryExpr>") {
		t.Fatalf("shape = %s", got)
	}
}

func TestShapeOfFragmentsAndBrokenCode(t *testing.T) {
	s, kind, ok := Shape([]byte("x := 1\nx++\n"), "")
	if !ok || kind != KindStmts || strings.Join(s, " ") != "AssignStmt:= Ident BasicLitINT ) IncDecStmt++ Ident )" {
		t.Fatalf("stmts: %v %q %v", s, kind, ok)
	}
	if _, _, ok := Shape([]byte("func f( {"), ""); ok {
		t.Fatal("broken code reported as a clean parse")
	}
}

func TestServerAnswersAstOp(t *testing.T) {
	got := serve(t, ServerConfig{Workers: 1}, request(map[string]any{"id": 1, "op": "ast", "kind": "expr", "src": "a + b"}))
	shape, _ := got["1"]["shape"].([]any)
	if got["1"]["ok"] != true || len(shape) != 4 || shape[0] != "BinaryExpr+" {
		t.Fatalf("response: %v", got["1"])
	}
}
