package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	goodGo = "package p\n\nfunc F() int { return 1 }\n"
	badGo  = "package p\n\nfunc F() int { return 1 \n"
)

// tree writes files (path -> content) under a temporary folder and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, src := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func runArgs(stdin string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExitCodes(t *testing.T) {
	root := tree(t, map[string]string{"good.go": goodGo, "bad.go": badGo})
	if code, out, _ := runArgs("", filepath.Join(root, "good.go")); code != 0 || out != "" {
		t.Errorf("clean file: exit %d, output %q", code, out)
	}
	code, out, _ := runArgs("", filepath.Join(root, "bad.go"))
	if want := filepath.Join(root, "bad.go") + ":4:1: expected '}', found 'EOF'\n"; code != 1 || !strings.Contains(out, want) {
		t.Errorf("broken file: exit %d, output %q, want a line %q", code, out, want)
	}
	if code, _, _ := runArgs("x := 1\n", "-"); code != 0 {
		t.Errorf("stdin fragment: exit %d", code)
	}
	if code, out, _ := runArgs("package p\nvar x int = \"s\"\n", "-typecheck", "-"); code != 1 || !strings.Contains(out, "-:2:13: cannot use") {
		t.Errorf("type error: exit %d, output %q", code, out)
	}
	for _, args := range [][]string{
		{},                            // nothing to check
		{"-nosuchflag", "x.go"},       // unknown flag
		{"-kind", "go", "x.go"},       // unknown kind
		{filepath.Join(root, "none")}, // missing path
	} {
		if code, _, stderr := runArgs("", args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

func TestFolderWalk(t *testing.T) {
	root := tree(t, map[string]string{
		"a.go":              goodGo,
		"sub/b.go":          goodGo,
		"sub/notes.txt":     "not go",
		"vendor/v.go":       badGo,
		"sub/testdata/t.go": badGo,
	})
	files := func(args ...string) []string {
		code, out, stderr := runArgs("", append([]string{"-json"}, args...)...)
		var names []string
		dec := json.NewDecoder(strings.NewReader(out))
		for dec.More() {
			var r struct {
				File string `json:"file"`
				OK   bool   `json:"ok"`
			}
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("-json output %q: %v", out, err)
			}
			rel, _ := filepath.Rel(root, r.File)
			names = append(names, filepath.ToSlash(rel))
		}
		t.Logf("exit %d, stderr %q", code, stderr)
		return names
	}
	if got := strings.Join(files(root), " "); got != "a.go sub/b.go" {
		t.Errorf("walk skips vendor/ and testdata/: got %q", got)
	}
	if got := strings.Join(files("-all", root), " "); got != "a.go sub/b.go sub/testdata/t.go vendor/v.go" {
		t.Errorf("-all walks them too: got %q", got)
	}
	// A folder named on the command line is walked even if it is a testdata folder.
	if got := strings.Join(files(filepath.Join(root, "sub", "testdata")), " "); got != "sub/testdata/t.go" {
		t.Errorf("named testdata folder: got %q", got)
	}
	if code, _, _ := runArgs("", root); code != 0 {
		t.Errorf("exit %d for a tree whose only broken files are skipped", code)
	}
	if code, _, _ := runArgs("", "-all", root); code != 1 {
		t.Errorf("exit %d with -all, want 1", code)
	}
}

func TestJSONOutput(t *testing.T) {
	code, out, _ := runArgs("package p\n\nfunc f() {\n", "-json", "-")
	var r struct {
		File   string `json:"file"`
		OK     bool   `json:"ok"`
		Kind   string `json:"kind"`
		Errors []struct {
			Line, Col, Offset int
			Msg               string
		} `json:"errors"`
		Decls []struct{ Kind, Name string } `json:"decls"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if code != 1 || r.File != "-" || r.OK || r.Kind != "file" || len(r.Errors) == 0 ||
		r.Errors[0].Line != 4 || r.Errors[0].Offset != 22 || len(r.Decls) != 1 || r.Decls[0].Name != "f" {
		t.Errorf("exit %d, %+v", code, r)
	}
}
