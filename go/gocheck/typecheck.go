package gocheck

import (
	"go/ast"
	"go/build"
	"go/importer"
	"go/scanner"
	"go/token"
	"go/types"
	"sync"
)

// The source importer type-checks each imported standard-library package from GOROOT/src once and
// keeps it; Go 1.20+ ships no precompiled standard library, so this is the import path that needs
// nothing but the toolchain's source. It is not safe for concurrent use: imports go through a lock.
var (
	importMu     sync.Mutex
	importFset   = token.NewFileSet()
	stdImporter  types.ImporterFrom
	importerOnce sync.Once
)

type lockedImporter struct{}

func (lockedImporter) Import(path string) (*types.Package, error) {
	return lockedImporter{}.ImportFrom(path, "", 0)
}

func (lockedImporter) ImportFrom(path, dir string, mode types.ImportMode) (*types.Package, error) {
	importerOnce.Do(func() {
		// cgo would need a C compiler at check time; the pure-Go variants type-check the same API.
		build.Default.CgoEnabled = false
		stdImporter = importer.ForCompiler(importFset, "source", nil).(types.ImporterFrom)
	})
	importMu.Lock()
	defer importMu.Unlock()
	return stdImporter.ImportFrom(path, dir, mode)
}

// typeCheck runs go/types over a parsed file or fragment; errors are positioned in the caller's text.
func typeCheck(p *parsed, lines []int, src []byte) (bool, []Diagnostic) {
	errs := checkFiles(p.fset, []*ast.File{p.file}, func(pos token.Position, msg string) Diagnostic {
		return position(lines, src, pos.Offset-p.prefix, msg)
	})
	return len(errs) == 0, errs
}

// checkFiles type-checks files of one package and maps each error's position with at.
func checkFiles(fset *token.FileSet, files []*ast.File, at func(token.Position, string) Diagnostic) []Diagnostic {
	errs := []Diagnostic{}
	conf := types.Config{
		Importer:    lockedImporter{},
		FakeImportC: true,
		Error: func(err error) {
			if te, ok := err.(types.Error); ok {
				// Unadjusted: a //line comment must not rename the file or move the offset.
				errs = append(errs, at(fset.PositionFor(te.Pos, false), te.Msg))
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
func TypeCheckPackage(files []PackageFile) []FileDiagnostic {
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
	for _, d := range checkFiles(fset, asts, func(pos token.Position, msg string) Diagnostic {
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
