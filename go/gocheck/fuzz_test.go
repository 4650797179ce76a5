package gocheck

import (
	"bytes"
	"go/format"
	"go/parser"
	"go/token"
	"testing"
)

var fuzzKinds = []string{KindAuto, KindFile, KindDecls, KindStmts, KindExpr}

// FuzzCheck holds Check to what every caller relies on, on any bytes: it never panics, every
// position lies inside the input with line and column agreeing with the offset, kind file is ok
// exactly when go/parser accepts the file (with gofmt's own verdict), and a text that is ok as
// some kind is ok as auto. Seeded from validators/cases.
//
//	go test -run XXX -fuzz FuzzCheck -fuzztime 60s ./gocheck
func FuzzCheck(f *testing.F) {
	for _, c := range loadCases(f) {
		// Huge seeds (the nesting-limit case) only slow the mutator down.
		if len(c.Src) > 8<<10 {
			continue
		}
		k := 0
		for i, kind := range fuzzKinds {
			if kind == c.Request.Kind {
				k = i
			}
		}
		f.Add(c.Src, uint8(k))
	}
	f.Fuzz(func(t *testing.T, src []byte, k uint8) {
		kind := fuzzKinds[int(k)%len(fuzzKinds)]
		// go/types runs on broken ASTs too; imports are left out only because resolving them from
		// GOROOT/src costs seconds, which would starve the mutator.
		typecheck := !bytes.Contains(src, []byte("import"))
		r := Check(src, Options{Kind: kind, Gofmt: true, Decls: true, Docs: true, TypeCheck: typecheck})
		if r.OK != (len(r.Errors) == 0) {
			t.Fatalf("ok=%v with %d errors", r.OK, len(r.Errors))
		}
		if r.Gofmt != nil && !r.OK {
			t.Fatalf("gofmt verdict on text that does not parse")
		}
		if err := positionsInside(src, r); err != nil {
			t.Fatal(err)
		}
		const mode = parser.AllErrors | parser.ParseComments | parser.SkipObjectResolution
		_, err := parser.ParseFile(token.NewFileSet(), "", src, mode)
		rf := Check(src, Options{Kind: KindFile, Gofmt: true})
		if rf.OK != (err == nil) {
			t.Fatalf("go/parser says %v, Check as a file says %+v", err, rf.Errors)
		}
		if err == nil {
			// A file's verdict is printed from the parsed AST; it must be gofmt's own.
			out, err := format.Source(src)
			if clean := err == nil && bytes.Equal(out, src); rf.Gofmt == nil || *rf.Gofmt != clean {
				t.Fatalf("gofmt verdict %v, format.Source says %v", rf.Gofmt, clean)
			}
		}
		// auto finds a reading whenever one of them parses.
		if kind != KindAuto && r.OK {
			if ra := Check(src, Options{Kind: KindAuto}); !ra.OK {
				t.Fatalf("ok as %s, not ok as auto (%s): %+v", kind, ra.Kind, ra.Errors)
			}
		}
	})
}
