package gocheck

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// sample has a place for every bug kind, and type-checks clean on its own.
const sample = `package sample

import (
	"errors"
	"strings"
)

type node struct {
	next *node
	val  int
}

// Sum adds the values of xs from index lo on.
func Sum(xs []int, lo int) int {
	total := 0
	for i := 0; i < len(xs); i++ {
		if i >= lo && xs[i] > 0 {
			total += xs[i]
		}
	}
	return total
}

// Last is the last node of a list.
func Last(n *node) *node {
	if n == nil {
		return nil
	}
	for n.next != nil {
		n = n.next
	}
	return n
}

func parse(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty")
	}
	return strings.ToUpper(s[1:]), nil
}

func Twice(s string) (string, error) {
	a, err := parse(s)
	if err != nil {
		return "", err
	}
	count := 2
	seen := false
	if count > 1 || !seen {
		seen = true
	} else {
		count--
	}
	return a + a[:len(a)-1], nil
}
`

func TestMutateEveryKind(t *testing.T) {
	for _, kind := range BugKinds {
		ms, err := Mutate([]byte(sample), MutateOptions{Seed: 1, PerFunc: 3, Kinds: []string{kind}})
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			t.Errorf("%s: no mutant", kind)
		}
		for _, m := range ms {
			if m.Kind != kind {
				t.Errorf("asked for %s, got %s", kind, m.Kind)
			}
			if !m.TypeOK {
				t.Errorf("%s in %s: the sample type-checks, so TypeOK must be true", kind, m.Func)
			}
			if m.Detail == "" || m.Line < 1 {
				t.Errorf("%s in %s: no detail or line: %+v", kind, m.Func, m)
			}
			assertMutant(t, []byte(sample), m)
		}
	}
}

func TestMutateDeterministic(t *testing.T) {
	opts := MutateOptions{Seed: 7, PerFunc: 2}
	a, _ := Mutate([]byte(sample), opts)
	b, _ := Mutate([]byte(sample), opts)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different mutants")
	}
	differ := false
	for seed := int64(8); seed < 20 && !differ; seed++ {
		c, _ := Mutate([]byte(sample), MutateOptions{Seed: seed, PerFunc: 2})
		differ = !reflect.DeepEqual(a, c)
	}
	if !differ {
		t.Fatal("twelve other seeds all gave the same mutants")
	}
	// A function's mutants do not depend on the rest of its file.
	alone := sample[:strings.Index(sample, "type node")] + sample[strings.Index(sample, "func parse"):]
	c, _ := Mutate([]byte(alone), opts)
	pick := func(ms []Mutant, fn string) (out []string) {
		for _, m := range ms {
			if m.Func == fn {
				out = append(out, m.Before)
			}
		}
		return out
	}
	if got, want := pick(c, "Twice"), pick(a, "Twice"); !reflect.DeepEqual(got, want) || len(got) == 0 {
		t.Fatalf("Twice's mutants changed with its file: %q vs %q", got, want)
	}
}

func TestMutateBadInput(t *testing.T) {
	if _, err := Mutate([]byte("package p\nfunc f( {"), MutateOptions{}); err == nil {
		t.Error("a file that does not parse gave no error")
	}
	if _, err := Mutate([]byte(sample), MutateOptions{Kinds: []string{"typo"}}); err == nil || !strings.Contains(err.Error(), "typo") {
		t.Errorf("unknown kind: %v", err)
	}
	req := `{"id":1,"op":"mutate","src":` + quote(sample) + `,"seed":3,"per_func":1}`
	resp := handle([]byte(req), 0)
	if resp.Error != "" || len(resp.Mutants) == 0 {
		t.Fatalf("server mutate: %+v", resp)
	}
	if resp := handle([]byte(`{"id":2,"op":"mutate"}`), 0); !strings.Contains(resp.Error, "needs src") {
		t.Errorf("mutate without src: %+v", resp)
	}
}

// TestMutateGoroot plants bugs in real functions of the standard library and checks every mutant.
func TestMutateGoroot(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: type-checks hundreds of mutants of the standard library")
	}
	pkgs := []string{"strings", "bytes", "sort", "strconv", "bufio", "container/list", "container/ring",
		"path", "unicode/utf8", "text/tabwriter", "encoding/csv", "encoding/hex", "encoding/base32",
		"html", "net/url", "math/bits", "regexp/syntax", "go/scanner", "archive/tar", "image"}
	kinds := map[string]int{}
	total, typed := 0, 0
	for _, pkg := range pkgs {
		dir := filepath.Join(build.Default.GOROOT, "src", pkg)
		names, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		sort.Strings(names)
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			ms, err := Mutate(src, MutateOptions{Seed: 42, PerFunc: 2})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, m := range ms {
				kinds[m.Kind]++
				total++
				if m.TypeOK {
					typed++
				}
				assertMutant(t, src, m)
			}
		}
	}
	t.Logf("%d mutants (%d of type-clean functions): %v", total, typed, kinds)
	if total < 500 || typed < 100 {
		t.Errorf("too few mutants: %d (%d type-clean)", total, typed)
	}
	for _, k := range BugKinds {
		if kinds[k] == 0 {
			t.Errorf("no %s mutant in the standard library sample", k)
		}
	}
}

// assertMutant checks the three promises independently of Mutate's own filter: the file with the
// mutant in place parses, the mutant differs from the original, and the whole file (every body
// kept, unlike Mutate's check) has no type error inside the function that the original lacked.
func assertMutant(t *testing.T, src []byte, m Mutant) {
	t.Helper()
	if m.Before == m.After {
		t.Errorf("%s %s: mutant equals the original", m.Func, m.Kind)
		return
	}
	if orig, ok := formatFunc(src[m.Start:m.End]); !ok || orig != m.After {
		t.Errorf("%s: After is not the original function", m.Func)
	}
	mutated := string(src[:m.Start]) + m.Before + string(src[m.End:])
	origErrs, ok1 := fileTypeErrors(t, string(src[:m.Start])+m.After+string(src[m.End:]), m.Start, len(m.After))
	mutErrs, ok2 := fileTypeErrors(t, mutated, m.Start, len(m.Before))
	if !ok2 {
		t.Errorf("%s %s: mutant does not parse:\n%s", m.Func, m.Kind, m.Before)
		return
	}
	if ok1 && !subset(mutErrs, origErrs) {
		t.Errorf("%s %s (%s): new type errors %v (original %v):\n%s", m.Func, m.Kind, m.Detail, mutErrs, origErrs, m.Before)
	}
	if m.TypeOK && len(mutErrs) > 0 {
		t.Errorf("%s %s: TypeOK but %v", m.Func, m.Kind, mutErrs)
	}
}

func fileTypeErrors(t *testing.T, src string, start, n int) ([]string, bool) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.ParseComments)
	if err != nil {
		return nil, false
	}
	var msgs []string
	conf := types.Config{Importer: lockedImporter{}, FakeImportC: true, Error: func(err error) {
		te := err.(types.Error)
		if off := fset.Position(te.Pos).Offset; off >= start && off < start+n {
			msgs = append(msgs, te.Msg)
		}
	}}
	conf.Check(f.Name.Name, fset, []*ast.File{f}, nil)
	sort.Strings(msgs)
	return msgs, true
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// FuzzMutate: Mutate never panics, and whatever it returns is a parsing mutant that differs.
func FuzzMutate(f *testing.F) {
	f.Add(sample, int64(1))
	f.Add("package p\n\nfunc f(a, b int) int {\n\tif a < b && a != 0 {\n\t\treturn a - 1\n\t}\n\treturn b\n}\n", int64(2))
	f.Add("package p\n\nfunc (T) m() { for i := 0; i < 3; i++ { _ = !true } }\n", int64(3))
	f.Fuzz(func(t *testing.T, src string, seed int64) {
		ms, err := Mutate([]byte(src), MutateOptions{Seed: seed, PerFunc: 2})
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Before == m.After {
				t.Fatalf("%s: mutant equals the original", m.Func)
			}
			if _, ok := formatFunc([]byte(m.Before)); !ok {
				t.Fatalf("%s: mutant does not parse:\n%s", m.Func, m.Before)
			}
		}
	})
}
