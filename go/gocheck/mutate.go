package gocheck

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"go/types"
	"hash/fnv"
	"math/rand"
	"sort"
	"strings"
)

// Bug kinds planted by Mutate: HumanEvalFix's taxonomy (OctoPack) without function misuse, plus
// missing nil or error checks, the commonest Go-specific fix.
const (
	BugOperator     = "operator_misuse"
	BugOffByOne     = "off_by_one"
	BugVariable     = "variable_misuse"
	BugMissingCheck = "missing_check"
	BugMissingLogic = "missing_logic"
	BugExcessLogic  = "excess_logic"
	BugValue        = "value_misuse"
)

// BugKinds lists every kind, in a fixed order (the order matters for determinism).
var BugKinds = []string{BugOperator, BugOffByOne, BugVariable, BugMissingCheck, BugMissingLogic, BugExcessLogic, BugValue}

// MutateOptions select the mutants: PerFunc of them per function (default 1), of the given kinds
// (default all), chosen by a generator seeded from Seed and the function's name alone, so that a
// function's mutants do not change when other code in its file does.
type MutateOptions struct {
	Seed    int64
	PerFunc int
	Kinds   []string
}

// Mutant is one planted bug. Before and After are the whole function (doc comment included),
// both gofmt-formatted, so that they differ by the bug alone.
type Mutant struct {
	Func   string `json:"func"` // "F" or "Recv.Method"
	Kind   string `json:"kind"`
	Detail string `json:"detail"` // what changed, e.g. "`<` became `<=`"
	Line   int    `json:"line"`   // line of the change in the source
	Start  int    `json:"start"`  // byte span of the function in the source, doc comment included
	End    int    `json:"end"`
	Before string `json:"before"`  // the buggy function
	After  string `json:"after"`   // the original function
	TypeOK bool   `json:"type_ok"` // the original type-checks clean, and so does the mutant
}

// edit replaces src[start:end] (offsets in the file) by repl.
type edit struct {
	kind, repl, detail string
	start, end         int
}

// Mutate plants bugs in the functions of one Go file. Every mutant parses, differs from the
// original, and type-checks where the original did: the type errors inside the mutated function
// (the file checked alone, other functions' bodies dropped) are a subset of the original's.
func Mutate(src []byte, opts MutateOptions) ([]Mutant, error) {
	kinds := map[string]bool{}
	for _, k := range opts.Kinds {
		if !contains(BugKinds, k) {
			return nil, fmt.Errorf("unknown bug kind %q (known: %s)", k, strings.Join(BugKinds, ", "))
		}
		kinds[k] = true
	}
	if len(kinds) == 0 {
		for _, k := range BugKinds {
			kinds[k] = true
		}
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "", src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("source does not parse: %v", err)
	}
	// Types of the original, for variable misuse (same type, in scope) and typed operator choices.
	// Errors are expected (the file is checked without its package's other files) and ignored:
	// go/types fills in what it can.
	info := &types.Info{
		Types: map[ast.Expr]types.TypeAndValue{}, Defs: map[*ast.Ident]types.Object{},
		Uses: map[*ast.Ident]types.Object{}, Scopes: map[ast.Node]*types.Scope{},
	}
	conf := types.Config{Importer: lockedImporter{}, FakeImportC: true, Error: func(error) {}}
	conf.Check(file.Name.Name, fset, []*ast.File{file}, info)

	per := max(opts.PerFunc, 1)
	seen := map[string]int{}
	var out []Mutant
	for _, d := range file.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		name := fd.Name.Name
		if fd.Recv != nil && len(fd.Recv.List) > 0 {
			name = recvName(fd.Recv.List[0].Type) + "." + name
		}
		key := fmt.Sprintf("%s#%d", name, seen[name])
		seen[name]++
		h := fnv.New64a()
		h.Write([]byte(key))
		rng := rand.New(rand.NewSource(opts.Seed ^ int64(h.Sum64())))
		m := &mutator{src: src, fset: fset, file: file, info: info, fd: fd, name: name}
		out = append(out, m.run(rng, kinds, per)...)
	}
	return out, nil
}

type mutator struct {
	src   []byte
	fset  *token.FileSet
	file  *ast.File
	info  *types.Info
	fd    *ast.FuncDecl
	name  string
	edits []edit
}

func (m *mutator) off(p token.Pos) int { return m.fset.Position(p).Offset }

func (m *mutator) text(n ast.Node) string { return string(m.src[m.off(n.Pos()):m.off(n.End())]) }

// run draws mutants: kinds in a seeded order, round robin, a seeded candidate of each, until
// per are accepted or the attempts run out.
func (m *mutator) run(rng *rand.Rand, kinds map[string]bool, per int) []Mutant {
	start, end := m.off(m.fd.Pos()), m.off(m.fd.End())
	if m.fd.Doc != nil {
		start = m.off(m.fd.Doc.Pos())
	}
	orig, ok := formatFunc(m.src[start:end])
	if !ok {
		return nil
	}
	m.collect()
	byKind := map[string][]edit{}
	for _, e := range m.edits {
		if kinds[e.kind] {
			byKind[e.kind] = append(byKind[e.kind], e)
		}
	}
	var order []string
	for _, k := range BugKinds {
		if len(byKind[k]) > 0 {
			order = append(order, k)
		}
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var out []Mutant
	var origErrs []string
	checked := false
	texts := map[string]bool{orig: true}
	for next, tries := 0, 0; len(out) < per && len(order) > 0 && tries < 6*per+6; tries++ {
		k := order[next%len(order)]
		cands := byKind[k]
		i := rng.Intn(len(cands))
		e := cands[i]
		cands[i] = cands[len(cands)-1]
		byKind[k] = cands[:len(cands)-1]
		if len(byKind[k]) == 0 {
			order = append(order[:next%len(order)], order[next%len(order)+1:]...)
		} else {
			next++
		}
		var b bytes.Buffer
		b.Write(m.src[start:e.start])
		b.WriteString(e.repl)
		b.Write(m.src[e.end:end])
		mut, ok := formatFunc(b.Bytes())
		if !ok || texts[mut] {
			continue
		}
		if !checked {
			origErrs, checked = m.typeErrors(start, end, []byte(orig)), true
		}
		if !subset(m.typeErrors(start, end, []byte(mut)), origErrs) {
			continue
		}
		texts[mut] = true
		out = append(out, Mutant{
			Func: m.name, Kind: e.kind, Detail: e.detail, Line: m.fset.Position(m.fset.File(m.fd.Pos()).Pos(e.start)).Line,
			Start: start, End: end, Before: mut, After: orig, TypeOK: len(origErrs) == 0,
		})
	}
	return out
}

// typeErrors type-checks the file with text in place of the function at src[start:end] and every
// other function body dropped (signatures stay, so calls still check), and returns the messages of
// the errors inside text, sorted. Dropping the bodies makes a check cost the function, not the file.
func (m *mutator) typeErrors(start, end int, text []byte) []string {
	var b bytes.Buffer
	pos, tStart := 0, 0
	for _, d := range m.file.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		if fd == m.fd {
			b.Write(m.src[pos:start])
			tStart = b.Len()
			b.Write(text)
			pos = end
			continue
		}
		b.Write(m.src[pos:m.off(fd.Body.Lbrace)])
		pos = m.off(fd.Body.Rbrace) + 1
	}
	b.Write(m.src[pos:])
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", b.Bytes(), parser.SkipObjectResolution)
	if err != nil {
		return []string{"syntax: " + err.Error()}
	}
	var msgs []string
	conf := types.Config{Importer: lockedImporter{}, FakeImportC: true, Error: func(err error) {
		if te, ok := err.(types.Error); ok {
			if off := fset.Position(te.Pos).Offset; off >= tStart && off < tStart+len(text) {
				msgs = append(msgs, te.Msg)
			}
		}
	}}
	conf.Check(f.Name.Name, fset, []*ast.File{f}, nil)
	sort.Strings(msgs)
	return msgs
}

// formatFunc gofmt-formats one function declaration (with its doc comment).
func formatFunc(text []byte) (string, bool) {
	const head = "package p\n\n"
	out, err := format.Source(append([]byte(head), text...))
	if err != nil || !bytes.HasPrefix(out, []byte(head)) {
		return "", false
	}
	return strings.TrimSuffix(string(out[len(head):]), "\n"), true
}

// subset reports whether the multiset a is contained in the multiset b (both sorted).
func subset(a, b []string) bool {
	j := 0
	for _, s := range a {
		for j < len(b) && b[j] < s {
			j++
		}
		if j == len(b) || b[j] != s {
			return false
		}
		j++
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
