// Package gocheck checks Go source with the standard library's own parser: whole files and
// fragments (declaration lists, statement lists, expressions), with every syntax error mapped back
// to the caller's text, gofmt cleanliness, the declarations the source holds and, on request, a
// go/types check with standard-library imports resolved.
package gocheck

import (
	"bytes"
	"go/ast"
	"go/format"
	"go/parser"
	"go/printer"
	"go/scanner"
	"go/token"
	"sort"
)

// Kinds of input. KindAuto asks Check to detect the kind.
const (
	KindAuto  = "auto"
	KindFile  = "file"
	KindDecls = "decls"
	KindStmts = "stmts"
	KindExpr  = "expr"
)

// Options select the work done beyond parsing.
type Options struct {
	Kind      string // auto, file, decls, stmts or expr
	Gofmt     bool   // report whether the source is gofmt-clean
	Decls     bool   // list the declarations
	Docs      bool   // with Decls: include each declaration's doc comment
	CodeHash  bool   // with Decls: include a hash of each declaration's tokens, comments and layout left out
	TypeCheck bool   // run go/types (standard-library imports resolved)
}

// Diagnostic is one error, positioned in the caller's text: 1-based line, 1-based byte column,
// 0-based byte offset.
type Diagnostic struct {
	Line   int    `json:"line"`
	Col    int    `json:"col"`
	Offset int    `json:"offset"`
	Msg    string `json:"msg"`
}

// Decl is one top-level declaration (or, for methods, Name is "Recv.Method").
type Decl struct {
	Kind      string `json:"kind"` // func, method, type, interface, struct, var, const
	Name      string `json:"name"`
	Recv      string `json:"recv,omitempty"`
	StartLine int    `json:"start_line"`
	EndLine   int    `json:"end_line"`
	Start     int    `json:"start"` // byte offsets of the declaration (doc comment excluded), end exclusive
	End       int    `json:"end"`
	Doc       string `json:"doc,omitempty"`
	// Code is a hash of the declaration's tokens (go/scanner: no comments, no layout), 16 hex
	// digits, when asked: two versions of a declaration with equal Code differ only in comments
	// or layout.
	Code string `json:"code,omitempty"`
}

// Result is the verdict on one input.
type Result struct {
	OK         bool         `json:"ok"`
	Kind       string       `json:"kind"`
	Package    string       `json:"package,omitempty"`
	Errors     []Diagnostic `json:"errors"`
	Gofmt      *bool        `json:"gofmt,omitempty"` // nil when not asked or when the source does not parse
	Decls      []Decl       `json:"decls,omitempty"`
	TypeErrors []Diagnostic `json:"type_errors,omitempty"`
	TypeOK     *bool        `json:"type_ok,omitempty"`
}

// parsed is one parse of the caller's source under one wrapping.
type parsed struct {
	kind   string
	fset   *token.FileSet
	file   *ast.File // nil for expressions
	expr   ast.Expr
	errs   []Diagnostic
	prefix int // bytes the wrapper put before the caller's text
	srcLen int
	base   int // the token.Pos of the wrapped text's first byte
}

// wrappers turn a fragment into a file. The prefix ends in a newline so that lines shift by a
// whole number and columns stay those of the caller's text.
var wrappers = map[string][2]string{
	KindFile:  {"", ""},
	KindDecls: {"package p\n", ""},
	KindStmts: {"package p\nfunc _() {\n", "\n}\n"},
}

var byteOrderMark = []byte("\ufeff")

func parseAs(kind string, src []byte) *parsed {
	p := &parsed{kind: kind, fset: token.NewFileSet(), srcLen: len(src)}
	const mode = parser.AllErrors | parser.ParseComments | parser.SkipObjectResolution
	var err error
	if kind == KindExpr {
		p.expr, err = parser.ParseExprFrom(p.fset, "", src, mode)
	} else {
		w := wrappers[kind]
		body := src
		p.prefix = len(w[0])
		// go/scanner skips a byte order mark only at the start of its text, and in a wrapper the
		// fragment's start is not; drop it here so that it means what it means at a file's start.
		if bytes.HasPrefix(src, byteOrderMark) {
			body, p.prefix = src[len(byteOrderMark):], p.prefix-len(byteOrderMark)
		}
		buf := make([]byte, 0, len(w[0])+len(body)+len(w[1]))
		buf = append(append(append(buf, w[0]...), body...), w[1]...)
		p.file, err = parser.ParseFile(p.fset, "", buf, mode)
	}
	p.fset.Iterate(func(f *token.File) bool { p.base = f.Base(); return false })
	if list, ok := err.(scanner.ErrorList); ok {
		for _, e := range list {
			p.errs = append(p.errs, p.diag(e.Pos.Offset, e.Msg))
		}
	} else if err != nil {
		p.errs = append(p.errs, Diagnostic{Line: 1, Col: 1, Msg: err.Error()})
	}
	if kind == KindStmts && p.file != nil {
		p.checkEnclosed(p.prefix + len(src) + 1) // the wrapper's '}' follows its "\n"
	}
	return p
}

// checkEnclosed reports a statement fragment that closes the function it is wrapped in:
// "x := 1\n}\nfunc g() {" parses, wrapped, as a valid file, but it is no statement list. The '}'
// that ends the wrapper's body before closing (its offset in the wrapped text) is the error.
func (p *parsed) checkEnclosed(closing int) {
	if len(p.file.Decls) == 0 {
		return
	}
	fn, ok := p.file.Decls[0].(*ast.FuncDecl)
	if !ok || fn.Body == nil || !fn.Body.Rbrace.IsValid() {
		return // a missing '}' is a parse error already
	}
	if off := int(fn.Body.Rbrace) - p.base; off < closing {
		p.errs = append(p.errs, p.diag(off, "unexpected '}', closing a block the fragment did not open"))
	}
}

// diag maps an offset in the wrapped text to the caller's offset. Positions in the wrapper (such
// as "expected '}', found 'EOF'" at the closing brace) land on the end of the text; clamping here
// matters to detect, which compares how far each reading got. Check adds line and column once the
// kind is chosen.
func (p *parsed) diag(off int, msg string) Diagnostic {
	return Diagnostic{Offset: min(max(off-p.prefix, 0), p.srcLen), Msg: msg}
}

// offset is a node position as a byte offset in the caller's text, clamped into it. It is
// computed from the file's base, not fset.Position: a node ending on a missing closing token ends
// one past EOF, where Position answers offset 0.
func (p *parsed) offset(pos token.Pos) int {
	return min(max(int(pos)-p.base-p.prefix, 0), p.srcLen)
}

// ValidKind reports whether Check knows kind ("" means auto).
func ValidKind(kind string) bool {
	switch kind {
	case "", KindAuto, KindFile, KindDecls, KindStmts, KindExpr:
		return true
	}
	return false
}

// Check parses src as the kind opts.Kind names (or the kind it detects) and reports on it.
func Check(src []byte, opts Options) *Result {
	if !ValidKind(opts.Kind) {
		return &Result{Kind: opts.Kind, Errors: []Diagnostic{{Line: 1, Col: 1, Msg: "unknown kind " + opts.Kind}}}
	}
	p := parseKind(src, opts.Kind)
	var lines []int // line starts, for positions: only errors, declarations and type errors need them
	if len(p.errs) > 0 || opts.Decls || opts.TypeCheck {
		lines = lineStarts(src)
	}
	// The parser repeats an error at one place while it recovers; report each once. Errors from
	// the wrapper's tail were clamped onto the end of the text, so sort again before comparing.
	sort.SliceStable(p.errs, func(i, j int) bool {
		a, b := p.errs[i], p.errs[j]
		return a.Offset < b.Offset || a.Offset == b.Offset && a.Msg < b.Msg
	})
	var errs []Diagnostic
	for i, e := range p.errs {
		if i > 0 && e == p.errs[i-1] {
			continue
		}
		errs = append(errs, position(lines, src, e.Offset, e.Msg))
	}
	p.errs = errs
	r := &Result{OK: len(p.errs) == 0, Kind: p.kind, Errors: p.errs}
	if r.Errors == nil {
		r.Errors = []Diagnostic{}
	}
	if p.file != nil && p.kind == KindFile && p.file.Name != nil {
		r.Package = p.file.Name.Name
	}
	if opts.Decls && p.file != nil && (p.kind == KindFile || p.kind == KindDecls) {
		r.Decls = declarations(p, lines, src, opts.Docs, opts.CodeHash)
	}
	if opts.TypeCheck && p.file != nil {
		typeOK, terrs := typeCheck(p, lines, src)
		r.TypeOK, r.TypeErrors = &typeOK, terrs
	}
	// Last: the gofmt verdict sorts the file's imports in place, as gofmt does (nothing reads the
	// AST after it).
	if opts.Gofmt && r.OK && len(src) <= MaxGofmtBytes {
		clean := isGofmt(p, src)
		r.Gofmt = &clean
	}
	return r
}

// parseKind reads src as kind names it, or as the kind detect finds for "" and auto.
func parseKind(src []byte, kind string) *parsed {
	if kind == "" || kind == KindAuto {
		return detect(src)
	}
	return parseAs(kind, src)
}

// detect picks the reading of src that parses, or else the one that gets furthest before its first
// error: a file if it starts with a package clause, else declarations, statements, an expression.
func detect(src []byte) *parsed {
	if startsWithPackage(src) {
		return parseAs(KindFile, src)
	}
	var best *parsed
	for _, kind := range []string{KindDecls, KindStmts, KindExpr} {
		p := parseAs(kind, src)
		if len(p.errs) == 0 {
			return p
		}
		if best == nil || p.errs[0].Offset > best.errs[0].Offset {
			best = p
		}
	}
	return best
}

// startsWithPackage reports whether the first token of src is the keyword package.
func startsWithPackage(src []byte) bool {
	var s scanner.Scanner
	fset := token.NewFileSet()
	s.Init(fset.AddFile("", -1, len(src)), src, nil, 0)
	_, tok, _ := s.Scan()
	return tok == token.PACKAGE
}

// MaxGofmtBytes bounds the gofmt comparison: printing costs about three parses, and on a
// multi-megabyte generated file the verdict is not worth the wait (Gofmt is then null).
const MaxGofmtBytes = 8 << 20

// gofmtPrinter is gofmt's printer: spaces for alignment, tabs for indentation, tab width 8, and
// number literal prefixes made canonical (printer mode 1<<30, unexported, as cmd/gofmt and
// go/format spell it).
var gofmtPrinter = printer.Config{Mode: printer.UseSpaces | printer.TabIndent | 1<<30, Tabwidth: 8}

// isGofmt reports whether gofmt would leave src unchanged. A whole file is handled as cmd/gofmt
// does: its imports sorted in place (ast.SortImports), then printed once from the AST already
// parsed, so it must be the AST's last use. (format.Node, which keeps the AST, prints every file
// with an import block, re-parses the text, sorts and prints again: over a third of gocheck's CPU
// on GOROOT/src, where `gocoder check --gofmt` took 1.35x the CPU of `gofmt -l`.) A fragment
// goes through format.Source, which knows how to indent and print partial source.
func isGofmt(p *parsed, src []byte) bool {
	if p.kind == KindFile {
		ast.SortImports(p.fset, p.file)
		var buf bytes.Buffer
		buf.Grow(len(src))
		err := gofmtPrinter.Fprint(&buf, p.fset, p.file)
		return err == nil && bytes.Equal(buf.Bytes(), src)
	}
	out, err := format.Source(src)
	return err == nil && bytes.Equal(out, src)
}

// lineStarts gives the byte offset where each line of src starts.
func lineStarts(src []byte) []int {
	starts := []int{0}
	for i, c := range src {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// position turns a byte offset in src (clamped into it) into a Diagnostic.
func position(lines []int, src []byte, off int, msg string) Diagnostic {
	if off < 0 {
		off = 0
	}
	if off > len(src) {
		off = len(src)
	}
	if len(lines) == 0 { // a position in no known file (typecheck_package): report it at 1:1
		lines = []int{0}
	}
	i := sort.Search(len(lines), func(i int) bool { return lines[i] > off }) - 1
	return Diagnostic{Line: i + 1, Col: off - lines[i] + 1, Offset: off, Msg: msg}
}

func parseFileFset(fset *token.FileSet, name string, src []byte) (*ast.File, error) {
	return parser.ParseFile(fset, name, src, parser.AllErrors|parser.ParseComments|parser.SkipObjectResolution)
}
