package gocheck

import (
	"bytes"
	"go/ast"
	"go/build"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// FixResult is a file with its standard-library imports fixed, as goimports fixes them.
type FixResult struct {
	Src     string   `json:"src"`               // the fixed file (gofmt'ed when asked)
	Added   []string `json:"added,omitempty"`   // import paths added
	Removed []string `json:"removed,omitempty"` // import paths removed
}

// FixImports adds the standard-library imports that src uses and does not import, removes the
// imports it does not use, and (with gofmt) gofmts the result: what goimports does with the standard library
// (it never looks outside GOROOT). A use is a selector `name.Sel` whose `name` is declared nowhere
// in the file (go/parser's resolver leaves it unresolved); the package is the standard-library one
// of that name that exports every Sel used, the one with the shortest path when several do
// (math/rand before crypto/rand, as goimports). An import is removed only when its name is known
// (a standard-library path, or an explicit name) and never used; blank, dot and "C" imports stay.
// src is a file or, without a package clause, a declaration list (fixed as if in `package p`).
// A source that does not parse comes back unchanged with its syntax errors.
func FixImports(src []byte, gofmt bool) (*FixResult, []Diagnostic) {
	const mode = parser.ParseComments | parser.AllErrors
	fset := token.NewFileSet()
	wrapped := false
	f, err := parser.ParseFile(fset, "", src, mode)
	if err != nil && !startsWithPackage(src) {
		// A declaration list: parsed behind a package clause of its own, taken off after.
		wsrc, wfset := append([]byte("package p\n"), src...), token.NewFileSet()
		if g, gerr := parser.ParseFile(wfset, "", wsrc, mode); gerr == nil {
			fset, f, err, src, wrapped = wfset, g, nil, wsrc, true
		}
	}
	if err != nil {
		kind := KindFile
		if !startsWithPackage(src) {
			kind = KindAuto
		}
		r := Check(src, Options{Kind: kind})
		if len(r.Errors) == 0 { // a statement list or an expression: no place for imports
			return nil, []Diagnostic{{Line: 1, Col: 1, Msg: "imports: a " + r.Kind + " fragment, not a file or declarations"}}
		}
		return nil, r.Errors
	}
	uses := map[string]map[string]bool{} // package name -> selectors used
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && id.Obj == nil && id.Name != "_" {
				if uses[id.Name] == nil {
					uses[id.Name] = map[string]bool{}
				}
				uses[id.Name][sel.Sel.Name] = true
			}
		}
		return true
	})
	var edits []textEdit
	res := &FixResult{}
	have := map[string]bool{} // names the file's imports bring in (unknown ones too: never added twice)
	tf := fset.File(f.Pos())
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.IMPORT {
			continue
		}
		removed := 0
		var cut []textEdit
		for _, s := range gd.Specs {
			spec := s.(*ast.ImportSpec)
			path, _ := strconv.Unquote(spec.Path.Value)
			name, known := importName(spec, path)
			have[name] = true
			if !known || name == "_" || name == "." || path == "C" || uses[name] != nil {
				continue
			}
			removed++
			res.Removed = append(res.Removed, path)
			start, end := spec.Pos(), spec.End()
			if spec.Doc != nil {
				start = spec.Doc.Pos()
			}
			if spec.Comment != nil {
				end = spec.Comment.End()
			}
			cut = append(cut, lineSpan(src, tf.Offset(start), tf.Offset(end)))
		}
		if removed > 0 && removed == len(gd.Specs) {
			start := gd.Pos()
			if gd.Doc != nil {
				start = gd.Doc.Pos()
			}
			cut = []textEdit{lineSpan(src, tf.Offset(start), tf.Offset(gd.End()))}
		}
		edits = append(edits, cut...)
	}
	var add []string
	for name, sels := range uses {
		if have[name] {
			continue
		}
		if path := stdPackageFor(name, sels); path != "" {
			add = append(add, path)
		}
	}
	sort.Strings(add)
	res.Added = add
	if len(add) > 0 {
		edits = append(edits, insertImports(src, f, tf, add, edits))
	}
	out := applyEdits(src, edits)
	if !gofmt {
		// only the import lines change: a caller that maps positions back to its own text (bench
		// finds the harness's test lines in the program) keeps every other line as it was
	} else if formatted, ferr := format.Source(out); ferr == nil {
		out = formatted
	}
	if wrapped {
		out = bytes.TrimLeft(bytes.TrimPrefix(out, []byte("package p\n")), "\n")
	}
	res.Src = string(out)
	return res, nil
}

// importName is the name an import spec brings into the file, and whether it is known: an explicit
// name, or a standard-library package's own name. Outside the standard library the name is the
// package clause of code that is not here, so it is unknown.
func importName(spec *ast.ImportSpec, path string) (string, bool) {
	if spec.Name != nil {
		return spec.Name.Name, true
	}
	if name, ok := stdNames()[path]; ok {
		return name, true
	}
	return path[strings.LastIndex(path, "/")+1:], false
}

// textEdit replaces src[start:end] with text.
type textEdit struct {
	start, end int
	text       string
}

// lineSpan widens [start, end) to whole lines when nothing else shares them (a spec on its own line
// goes with its newline), else to the spec and a semicolon after it.
func lineSpan(src []byte, start, end int) textEdit {
	ls := bytes.LastIndexByte(src[:start], '\n') + 1
	le := len(src)
	if i := bytes.IndexByte(src[end:], '\n'); i >= 0 {
		le = end + i + 1
	}
	if len(bytes.TrimSpace(src[ls:start])) == 0 && len(bytes.TrimSpace(src[end:le])) == 0 {
		return textEdit{ls, le, ""}
	}
	rest := bytes.TrimLeft(src[end:], " \t")
	if len(rest) > 0 && rest[0] == ';' {
		end = len(src) - len(rest) + 1
	}
	return textEdit{start, end, ""}
}

// insertImports places the new specs in the file's first parenthesized import declaration that
// survives, at its top (the standard library's group, where gofmt sorts them); else as a new
// declaration after the package clause.
func insertImports(src []byte, f *ast.File, tf *token.File, paths []string, cuts []textEdit) textEdit {
	specs := ""
	for _, p := range paths {
		specs += "\t" + strconv.Quote(p) + "\n"
	}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.IMPORT || !gd.Lparen.IsValid() {
			continue
		}
		at := tf.Offset(gd.Lparen) + 1
		if cutInside(cuts, at) {
			continue
		}
		if rest := bytes.TrimLeft(src[at:], " \t"); len(rest) > 0 && rest[0] == '\n' {
			at = len(src) - len(rest) + 1 // on the line after "(", joining the first group
			return textEdit{at, at, specs}
		}
		return textEdit{at, at, "\n" + specs}
	}
	at := tf.Offset(f.Name.End())
	if len(paths) == 1 {
		return textEdit{at, at, "\n\nimport " + strconv.Quote(paths[0])}
	}
	return textEdit{at, at, "\n\nimport (\n" + specs + ")"}
}

func cutInside(cuts []textEdit, at int) bool {
	for _, c := range cuts {
		if c.start < at && at <= c.end {
			return true
		}
	}
	return false
}

func applyEdits(src []byte, edits []textEdit) []byte {
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start > edits[j].start })
	out := append([]byte(nil), src...)
	for _, e := range edits {
		out = append(out[:e.start], append([]byte(e.text), out[e.end:]...)...)
	}
	return out
}

// The standard library's packages, read from GOROOT/src once: path -> package name, and name ->
// paths. Internal, vendored, cmd and main packages are left out (no program can import them).
var (
	stdOnce   sync.Once
	stdByPath map[string]string
	stdByName map[string][]string
	exportsMu sync.Mutex
	exports   = map[string]map[string]bool{}
)

func stdNames() map[string]string {
	stdOnce.Do(loadStd)
	return stdByPath
}

func loadStd() {
	stdByPath, stdByName = map[string]string{}, map[string][]string{}
	root := filepath.Join(build.Default.GOROOT, "src")
	filepath.WalkDir(root, func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, dir)
		rel = filepath.ToSlash(rel)
		base := d.Name()
		if rel == "cmd" || base == "internal" || base == "vendor" || base == "testdata" || strings.HasPrefix(base, ".") {
			return filepath.SkipDir
		}
		if rel == "." {
			return nil
		}
		pkg, err := build.Default.ImportDir(dir, build.ImportComment)
		if err != nil || pkg.Name == "" || pkg.Name == "main" || pkg.Name == "documentation" {
			return nil
		}
		stdByPath[rel] = pkg.Name
		stdByName[pkg.Name] = append(stdByName[pkg.Name], rel)
		return nil
	})
	stdByPath["unsafe"] = "unsafe"
	stdByName["unsafe"] = []string{"unsafe"}
	for _, paths := range stdByName {
		// goimports' order: the shortest path first (math/rand before crypto/rand and math/rand/v2)
		sort.Slice(paths, func(i, j int) bool {
			if len(paths[i]) != len(paths[j]) {
				return len(paths[i]) < len(paths[j])
			}
			return paths[i] < paths[j]
		})
	}
}

// stdPackageFor is the standard-library package named name that exports every selector in sels.
func stdPackageFor(name string, sels map[string]bool) string {
	stdOnce.Do(loadStd)
	for _, path := range stdByName[name] {
		ex := exported(path)
		all := true
		for s := range sels {
			all = all && ex[s]
		}
		if all {
			return path
		}
	}
	return ""
}

// exported is the set of exported top-level names of a standard-library package, read once.
func exported(path string) map[string]bool {
	exportsMu.Lock()
	defer exportsMu.Unlock()
	if ex, ok := exports[path]; ok {
		return ex
	}
	ex := map[string]bool{}
	if path == "unsafe" {
		for _, n := range []string{"Pointer", "Sizeof", "Alignof", "Offsetof", "Add", "Slice", "String", "StringData", "SliceData"} {
			ex[n] = true
		}
	} else if pkg, err := build.Default.Import(path, "", 0); err == nil {
		fset := token.NewFileSet()
		for _, name := range pkg.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(pkg.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				continue
			}
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if d.Recv == nil && d.Name.IsExported() {
						ex[d.Name.Name] = true
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.TypeSpec:
							ex[s.Name.Name] = ex[s.Name.Name] || s.Name.IsExported()
						case *ast.ValueSpec:
							for _, n := range s.Names {
								ex[n.Name] = ex[n.Name] || n.IsExported()
							}
						}
					}
				}
			}
		}
	}
	exports[path] = ex
	return ex
}
