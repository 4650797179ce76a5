package gocheck

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// casesDir holds the golden cases shared with pytest (tests/test_golden.py); validators/README.md
// describes their format.
const casesDir = "../../validators/cases"

type goldenCase struct {
	Name    string
	Src     []byte
	Request struct {
		Kind      string `json:"kind"`
		TypeCheck bool   `json:"typecheck"`
		Docs      bool   `json:"docs"`
	} `json:"request"`
	// Expect is kept raw: a key that is absent (package, doc, type_ok) is not compared.
	Expect map[string]json.RawMessage `json:"expect"`
}

func loadCases(t testing.TB) []goldenCase {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(casesDir, "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no golden cases in %s (%v)", casesDir, err)
	}
	sort.Strings(names)
	var out []goldenCase
	for _, jsonPath := range names {
		c := goldenCase{Name: strings.TrimSuffix(filepath.Base(jsonPath), ".json")}
		b, err := os.ReadFile(jsonPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", jsonPath, err)
		}
		if c.Src, err = os.ReadFile(strings.TrimSuffix(jsonPath, ".json") + ".src"); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// verdict is the part of a Result that golden cases pin, in the cases' own JSON shape. Messages go
// through JSON as the server sends them (invalid UTF-8 in a message becomes U+FFFD).
func verdict(r *Result, expect map[string]json.RawMessage) map[string]any {
	diags := func(ds []Diagnostic) []any {
		out := []any{}
		for _, d := range ds {
			out = append(out, map[string]any{"line": d.Line, "col": d.Col, "msg": d.Msg})
		}
		return out
	}
	wantDocs := docsExpected(expect)
	decls := []any{}
	for _, d := range r.Decls {
		m := map[string]any{"kind": d.Kind, "name": d.Name, "recv": d.Recv,
			"start_line": d.StartLine, "end_line": d.EndLine}
		if wantDocs {
			m["doc"] = d.Doc
		}
		decls = append(decls, m)
	}
	v := map[string]any{"ok": r.OK, "kind": r.Kind, "errors": diags(r.Errors), "gofmt": r.Gofmt, "decls": decls}
	if _, ok := expect["package"]; ok {
		v["package"] = r.Package
	}
	if _, ok := expect["type_ok"]; ok {
		v["type_ok"], v["type_errors"] = r.TypeOK, diags(r.TypeErrors)
		if r.TypeErrors == nil {
			v["type_errors"] = []any{}
		}
	}
	return roundTrip(v)
}

// docsExpected reports whether the expected decls carry doc comments.
func docsExpected(expect map[string]json.RawMessage) bool {
	var decls []map[string]any
	json.Unmarshal(expect["decls"], &decls)
	for _, d := range decls {
		if _, ok := d["doc"]; ok {
			return true
		}
	}
	return false
}

func roundTrip(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

func TestGolden(t *testing.T) {
	for _, c := range loadCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			r := Check(c.Src, Options{Kind: c.Request.Kind, Gofmt: true, Decls: true,
				Docs: c.Request.Docs, TypeCheck: c.Request.TypeCheck})
			var want map[string]any
			b, _ := json.Marshal(c.Expect)
			json.Unmarshal(b, &want)
			got := verdict(r, c.Expect)
			for _, k := range sortedKeys(want) {
				if !reflect.DeepEqual(got[k], want[k]) {
					t.Errorf("%s:\n got  %s\n want %s", k, show(got[k]), show(want[k]))
				}
			}
			if err := positionsInside(c.Src, r); err != nil {
				t.Error(err)
			}
		})
	}
}

// positionsInside checks that every position in r lies in src and that line and column agree with
// the offset: the property the fuzz target holds Check to as well.
func positionsInside(src []byte, r *Result) error {
	for _, d := range append(append([]Diagnostic{}, r.Errors...), r.TypeErrors...) {
		if d.Offset < 0 || d.Offset > len(src) {
			return fmt.Errorf("error %+v: offset outside [0, %d]", d, len(src))
		}
		line := 1 + strings.Count(string(src[:d.Offset]), "\n")
		col := d.Offset - (strings.LastIndexByte(string(src[:d.Offset]), '\n') + 1) + 1
		if d.Line != line || d.Col != col {
			return fmt.Errorf("error %+v: offset %d is %d:%d", d, d.Offset, line, col)
		}
	}
	for _, d := range r.Decls {
		if d.Start < 0 || d.Start > d.End || d.End > len(src) {
			return fmt.Errorf("decl %+v: span outside [0, %d]", d, len(src))
		}
		if d.StartLine != 1+strings.Count(string(src[:d.Start]), "\n") ||
			d.EndLine != 1+strings.Count(string(src[:d.End]), "\n") {
			return fmt.Errorf("decl %+v: lines disagree with offsets", d)
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
