package gocheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A redeclaration is one error with its other position, not two findings (the second tab-led and,
// sorted by position, first).
func TestRedeclarationIsOneFinding(t *testing.T) {
	r := Check([]byte("package p\n\nfunc F() {}\n\nfunc F() {}\n"), Options{Kind: "file", TypeCheck: true})
	want := "F redeclared in this block (other declaration of F at 3:6)"
	if len(r.TypeErrors) != 1 || r.TypeErrors[0].Msg != want || r.TypeErrors[0].Line != 5 {
		t.Errorf("file: got %+v, want one error %q at line 5", r.TypeErrors, want)
	}
	got := TypeCheckPackage([]PackageFile{
		{Name: "a.go", Src: "package p\n\nfunc F() {}\n"},
		{Name: "b.go", Src: "package p\n\nfunc F() {}\n"},
	}, "")
	want = "F redeclared in this block (other declaration of F at a.go:3:6)"
	if len(got) != 1 || got[0].File != "b.go" || got[0].Msg != want {
		t.Errorf("package: got %+v, want one error %q in b.go", got, want)
	}
}

// A module's own packages resolve from its go.mod wherever the checker runs (here: in gocoder/go, another
// module, where they resolve to nothing).
func TestImportsResolveFromTheModule(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.21\n")
	write("sub/sub.go", "package sub\n\nfunc Twice(n int) int { return 2 * n }\n")
	files := []PackageFile{{Name: "main.go", Src: "package main\n\nimport \"example.com/m/sub\"\n\nfunc main() { _ = sub.Twice(1) }\n"}}
	if got := TypeCheckPackage(files, dir); len(got) != 0 {
		t.Errorf("from the module's root: %+v", got)
	}
	if got := TypeCheckPackage(files, ""); len(got) == 0 || !strings.Contains(got[0].Msg, "example.com/m/sub") {
		t.Errorf("from another module the import should not resolve: %+v", got)
	}
}
