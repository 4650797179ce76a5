package gocheck

import (
	"go/ast"
	"go/token"
	"reflect"
)

// Shape is the normalized syntax tree of src, read as opts.Kind reads it (auto: detected): the node
// kinds in pre-order, each node with children closed by ")". Names and literal values are dropped
// (an identifier is "Ident", a literal its token kind), operators are kept ("BinaryExpr+"), comments
// and the fragment's wrapper are left out: two programs that differ only in naming and layout have
// the same shape. gocoder's evaluation compares shapes by edit distance. ok reports a clean parse
// (a shape of broken code is of the partial tree the parser recovered).
func Shape(src []byte, kind string) (shape []string, k string, ok bool) {
	p := parseKind(src, kind)
	var roots []ast.Node
	switch {
	case p.expr != nil:
		roots = []ast.Node{p.expr}
	case p.file == nil:
	case p.kind == KindStmts && len(p.file.Decls) > 0:
		if fn, isFn := p.file.Decls[0].(*ast.FuncDecl); isFn && fn.Body != nil {
			for _, s := range fn.Body.List {
				roots = append(roots, s)
			}
		}
	case p.kind == KindDecls:
		for _, d := range p.file.Decls {
			roots = append(roots, d)
		}
	default:
		roots = []ast.Node{p.file}
	}
	shape = []string{}
	for _, r := range roots {
		shape = appendShape(shape, r)
	}
	return shape, p.kind, len(p.errs) == 0
}

func appendShape(out []string, root ast.Node) []string {
	var stack []int // len(out) when each open node was entered: a node with no children needs no ")"
	ast.Inspect(root, func(n ast.Node) bool {
		if n == nil {
			start := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if len(out) > start+1 {
				out = append(out, ")")
			}
			return false
		}
		switch n.(type) {
		case *ast.Comment, *ast.CommentGroup:
			return false
		}
		stack = append(stack, len(out))
		out = append(out, label(n))
		return true
	})
	return out
}

func label(n ast.Node) string {
	name := reflect.TypeOf(n).Elem().Name()
	var op token.Token
	switch x := n.(type) {
	case *ast.BasicLit:
		op = x.Kind
	case *ast.BinaryExpr:
		op = x.Op
	case *ast.UnaryExpr:
		op = x.Op
	case *ast.AssignStmt:
		op = x.Tok
	case *ast.IncDecStmt:
		op = x.Tok
	case *ast.BranchStmt:
		op = x.Tok
	case *ast.GenDecl:
		op = x.Tok
	default:
		return name
	}
	return name + op.String()
}
