package gocheck

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// importsDir holds the import-fixing cases shared with pytest (tests/test_golden.py): NAME.src is
// the input, NAME.out the file goimports would write for it (validators/README.md).
const importsDir = "../../validators/imports"

type importsCase struct {
	name     string
	src, out []byte
}

func loadImportsCases(t testing.TB) []importsCase {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(importsDir, "*.src"))
	if len(names) == 0 {
		t.Fatalf("no import cases in %s", importsDir)
	}
	sort.Strings(names)
	var out []importsCase
	for _, n := range names {
		src, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(n, ".src") + ".out")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, importsCase{filepath.Base(n), src, want})
	}
	return out
}

func TestFixImportsGolden(t *testing.T) {
	for _, c := range loadImportsCases(t) {
		r, errs := FixImports(c.src, true)
		if errs != nil {
			t.Errorf("%s: %v", c.name, errs)
			continue
		}
		if r.Src != string(c.out) {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, r.Src, c.out)
		}
		// fixing a fixed file changes nothing
		if again, _ := FixImports([]byte(r.Src), true); again == nil || again.Src != r.Src || len(again.Added)+len(again.Removed) > 0 {
			t.Errorf("%s: not idempotent: %+v", c.name, again)
		}
	}
}

func TestFixImportsBrokenSource(t *testing.T) {
	r, errs := FixImports([]byte("package p\nfunc f() {"), true)
	if r != nil || len(errs) == 0 || errs[0].Line != 2 {
		t.Fatalf("got %+v, %+v", r, errs)
	}
}

func TestFixImportsWithoutGofmtKeepsOtherLines(t *testing.T) {
	src := "package main\n\nimport (\n\t\"os\"\n\t\"fmt\"\n)\n\nfunc  main() { println(strings.ToUpper(os.Args[0])) }\n"
	want := "package main\n\nimport (\n\t\"strings\"\n\t\"os\"\n)\n\nfunc  main() { println(strings.ToUpper(os.Args[0])) }\n"
	if r, _ := FixImports([]byte(src), false); r == nil || r.Src != want {
		t.Fatalf("got %+v", r)
	}
}

func TestServeImports(t *testing.T) {
	resp := handle([]byte(`{"id":1,"op":"imports","src":"package main\n\nimport \"fmt\"\n\nfunc main() { println(strings.ToUpper(\"a\")) }\n"}`), 0)
	if resp.Fixed == nil || !resp.OK || len(resp.Fixed.Added) != 1 || resp.Fixed.Added[0] != "strings" ||
		len(resp.Fixed.Removed) != 1 || resp.Fixed.Removed[0] != "fmt" {
		t.Fatalf("%+v %+v", resp.Result, resp.Fixed)
	}
}

// FuzzImports holds FixImports to what its callers rely on: it never panics; a source that parses
// comes back parsing (as a file, or as declarations when it had no package clause); and a second
// fix adds and removes nothing. Seeded from the import cases and the check cases.
//
//	go test -run XXX -fuzz FuzzImports -fuzztime 60s ./gocheck
func FuzzImports(f *testing.F) {
	for _, c := range loadImportsCases(f) {
		f.Add(c.src)
	}
	for _, c := range loadCases(f) {
		if len(c.Src) <= 8<<10 {
			f.Add(c.Src)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		r, errs := FixImports(src, true)
		if r == nil {
			if len(errs) == 0 {
				t.Fatal("no result and no errors")
			}
			return
		}
		text := []byte(r.Src)
		if !startsWithPackage(src) {
			text = append([]byte("package p\n"), text...)
		}
		if _, err := parser.ParseFile(token.NewFileSet(), "", text, parser.ParseComments); err != nil {
			t.Fatalf("fixed source does not parse: %v\n%s", err, r.Src)
		}
		// (the text itself may still move: gofmt is not idempotent on some comment layouts)
		again, _ := FixImports([]byte(r.Src), true)
		if again == nil || len(again.Added)+len(again.Removed) > 0 {
			t.Fatalf("a second fix changed the imports:\n%s\n---\n%+v", r.Src, again)
		}
	})
}
