package gocheck

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/scanner"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// The source importer type-checks each imported standard-library package from GOROOT/src once and
// keeps it; Go 1.20+ ships no precompiled standard library, so this is the import path that needs
// nothing but the toolchain's source. It is not safe for concurrent use: imports go through a lock.
//
// A package outside the standard library is found by go/build, which asks `go list` from
// build.Default.Dir (the working folder when empty), not from the importing file: a checker started
// elsewhere than the module would resolve nothing. So each module gets its own source importer
// (its cache holds that module's view of its dependencies), called with build.Default.Dir set to the
// module's root while the lock is held.
var (
	importMu     sync.Mutex
	importFset   = token.NewFileSet()
	stdImporter  types.ImporterFrom
	modImporters = map[string]types.ImporterFrom{}
	importerOnce sync.Once
)

// lockedImporter imports for files of the module rooted at moduleDir ("" for none known).
type lockedImporter struct{ moduleDir string }

func (li lockedImporter) Import(path string) (*types.Package, error) {
	return li.ImportFrom(path, "", 0)
}

func (li lockedImporter) ImportFrom(path, dir string, mode types.ImportMode) (*types.Package, error) {
	importerOnce.Do(func() {
		// cgo would need a C compiler at check time; the pure-Go variants type-check the same API.
		build.Default.CgoEnabled = false
		stdImporter = importer.ForCompiler(importFset, "source", nil).(types.ImporterFrom)
	})
	importMu.Lock()
	defer importMu.Unlock()
	if li.moduleDir == "" || isStd(path) {
		return stdImporter.ImportFrom(path, dir, mode)
	}
	imp, ok := modImporters[li.moduleDir]
	if !ok {
		imp = importer.ForCompiler(importFset, "source", nil).(types.ImporterFrom)
		modImporters[li.moduleDir] = imp
	}
	prev := build.Default.Dir
	build.Default.Dir = li.moduleDir // the source importer reads build.Default through a pointer
	defer func() { build.Default.Dir = prev }()
	return imp.ImportFrom(path, dir, mode)
}

// isStd reports whether path is a standard-library package (or "C", which FakeImportC handles).
func isStd(path string) bool {
	if path == "C" || path == "unsafe" {
		return true
	}
	info, err := os.Stat(filepath.Join(build.Default.GOROOT, "src", path))
	return err == nil && info.IsDir()
}

// typeCheck runs go/types over a parsed file or fragment; errors are positioned in the caller's text.
func typeCheck(p *parsed, lines []int, src []byte) (bool, []Diagnostic) {
	errs := checkFiles(p.fset, []*ast.File{p.file}, "", func(pos token.Position, msg string) Diagnostic {
		return position(lines, src, pos.Offset-p.prefix, msg)
	})
	return len(errs) == 0, errs
}

// checkFiles type-checks files of one package and maps each error's position with at; imports outside
// the standard library are resolved from moduleDir ("" for the working folder).
func checkFiles(fset *token.FileSet, files []*ast.File, moduleDir string, at func(token.Position, string) Diagnostic) []Diagnostic {
	errs := []Diagnostic{}
	conf := types.Config{
		Importer:    lockedImporter{moduleDir},
		FakeImportC: true,
		Error: func(err error) {
			if te, ok := err.(types.Error); ok {
				// Unadjusted: a //line comment must not rename the file or move the offset.
				d := at(fset.PositionFor(te.Pos, false), te.Msg)
				if strings.HasPrefix(te.Msg, "\t") && len(errs) > 0 {
					// go/types reports the rest of one error as its own, tab-led ("\tother declaration
					// of F"): it belongs to the error before it, as one finding.
					errs[len(errs)-1].Msg += " (" + strings.TrimSpace(te.Msg) + " at " + where(errs[len(errs)-1], d) + ")"
					return
				}
				errs = append(errs, d)
			} else {
				errs = append(errs, Diagnostic{Line: 1, Col: 1, Msg: err.Error()})
			}
		},
	}
	pkg := "p"
	if len(files) > 0 && files[0].Name != nil {
		pkg = files[0].Name.Name
	}
	conf.Check(pkg, fset, files, nil)
	return errs
}

// where is d's position as a reader of the error before it needs it: line:col, and the file first when
// it is another file of the package (package diagnostics carry their file in Msg, before a NUL).
func where(before, d Diagnostic) string {
	pos := fmt.Sprintf("%d:%d", d.Line, d.Col)
	if name, _ := splitName(d.Msg); name != "" {
		if prev, _ := splitName(before.Msg); prev != name {
			return name + ":" + pos
		}
	}
	return pos
}

// PackageFile is one file of a package checked as a unit.
type PackageFile struct {
	Name string `json:"name"`
	Src  string `json:"src"`
}

// FileDiagnostic is a Diagnostic with the file it is in.
type FileDiagnostic struct {
	File string `json:"file"`
	Diagnostic
}

// TypeCheckPackage type-checks whole files that form one package. Errors name the file they are
// in. Syntax errors come first: a partial AST can type-check clean, and that must not read as ok.
// moduleDir is the root (the go.mod folder) of the module the files belong to: imports outside the
// standard library are resolved from it ("" resolves them from the working folder).
func TypeCheckPackage(files []PackageFile, moduleDir string) []FileDiagnostic {
	fset := token.NewFileSet()
	var asts []*ast.File
	lines := map[string][]int{}
	srcs := map[string][]byte{}
	out := []FileDiagnostic{}
	for _, f := range files {
		src := []byte(f.Src)
		af, err := parseFileFset(fset, f.Name, src)
		lines[f.Name], srcs[f.Name] = lineStarts(src), src
		if list, ok := err.(scanner.ErrorList); ok {
			for i, e := range list {
				if i > 0 && e.Pos.Offset == list[i-1].Pos.Offset && e.Msg == list[i-1].Msg {
					continue // the parser repeats itself while it recovers
				}
				d := position(lines[f.Name], src, e.Pos.Offset, e.Msg)
				out = append(out, FileDiagnostic{File: f.Name, Diagnostic: d})
			}
		}
		if af != nil {
			asts = append(asts, af)
		}
	}
	for _, d := range checkFiles(fset, asts, moduleDir, func(pos token.Position, msg string) Diagnostic {
		d := position(lines[pos.Filename], srcs[pos.Filename], pos.Offset, msg)
		d.Msg = pos.Filename + "\x00" + msg
		return d
	}) {
		name, msg := splitName(d.Msg)
		d.Msg = msg
		out = append(out, FileDiagnostic{File: name, Diagnostic: d})
	}
	return out
}

func splitName(s string) (string, string) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:]
		}
	}
	return "", s
}
