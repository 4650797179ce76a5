package gocheck

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"strconv"
	"strings"
)

// The candidate edits of each bug kind. Candidates are generous: Mutate keeps only those that
// parse, change the code and add no type error, so a candidate that is wrong in some context (a
// variable out of scope, a duplicate case value) costs one rejected attempt, not a bad mutant.

// opSwap is operator misuse: each operator and the one a slip of the mind puts in its place.
var opSwap = map[token.Token]token.Token{
	token.ADD: token.SUB, token.SUB: token.ADD, token.MUL: token.QUO, token.QUO: token.MUL,
	token.REM: token.QUO, token.LAND: token.LOR, token.LOR: token.LAND, token.EQL: token.NEQ,
	token.NEQ: token.EQL, token.LSS: token.GTR, token.GTR: token.LSS, token.LEQ: token.GEQ,
	token.GEQ: token.LEQ, token.AND: token.OR, token.OR: token.AND, token.XOR: token.AND,
	token.SHL: token.SHR, token.SHR: token.SHL, token.AND_NOT: token.AND,
	token.ADD_ASSIGN: token.SUB_ASSIGN, token.SUB_ASSIGN: token.ADD_ASSIGN,
	token.MUL_ASSIGN: token.QUO_ASSIGN, token.QUO_ASSIGN: token.MUL_ASSIGN,
	token.OR_ASSIGN: token.AND_ASSIGN, token.AND_ASSIGN: token.OR_ASSIGN,
	token.SHL_ASSIGN: token.SHR_ASSIGN, token.SHR_ASSIGN: token.SHL_ASSIGN,
	token.INC: token.DEC, token.DEC: token.INC,
}

// boundary is off-by-one on a comparison: the bound included or excluded.
var boundary = map[token.Token]token.Token{token.LSS: token.LEQ, token.LEQ: token.LSS, token.GTR: token.GEQ, token.GEQ: token.GTR}

func (m *mutator) add(kind string, start, end int, repl, detail string, args ...any) {
	m.edits = append(m.edits, edit{kind: kind, start: start, end: end, repl: repl, detail: fmt.Sprintf(detail, args...)})
}

// replace adds an edit that puts repl in place of node n.
func (m *mutator) replace(kind string, n ast.Node, repl, detail string, args ...any) {
	m.add(kind, m.off(n.Pos()), m.off(n.End()), repl, detail, args...)
}

// collect lists the candidate edits of every kind in the function, in source order.
func (m *mutator) collect() {
	var conds []ast.Expr // conditions of ifs and loops, for excess logic
	ast.Inspect(m.fd.Body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.IfStmt:
			conds = append(conds, s.Cond)
		case *ast.ForStmt:
			if s.Cond != nil {
				conds = append(conds, s.Cond)
			}
		}
		return true
	})
	locals := m.locals()
	var stack []ast.Node
	ast.Inspect(m.fd.Body, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return false
		}
		var parent ast.Node
		if len(stack) > 0 {
			parent = stack[len(stack)-1]
		}
		m.visit(n, parent, conds, locals)
		stack = append(stack, n)
		return true
	})
}

func (m *mutator) visit(n, parent ast.Node, conds []ast.Expr, locals []*types.Var) {
	switch x := n.(type) {
	case *ast.BinaryExpr:
		m.binary(x)
	case *ast.AssignStmt:
		if to, ok := opSwap[x.Tok]; ok {
			m.add(BugOperator, m.off(x.TokPos), m.off(x.TokPos)+len(x.Tok.String()), to.String(), "`%s` became `%s`", x.Tok, to)
		}
	case *ast.IncDecStmt:
		to := opSwap[x.Tok]
		m.add(BugOperator, m.off(x.TokPos), m.off(x.TokPos)+len(x.Tok.String()), to.String(), "`%s` became `%s`", x.Tok, to)
	case *ast.UnaryExpr:
		if x.Op == token.NOT {
			m.replace(BugOperator, x, m.text(x.X), "the negation of `%s` was dropped", short(m.text(x.X)))
		}
	case *ast.IndexExpr:
		if m.isInt(x.Index) {
			m.shift(x.Index)
		}
	case *ast.SliceExpr:
		for _, e := range []ast.Expr{x.Low, x.High} {
			if e != nil && m.isInt(e) {
				m.shift(e)
			}
		}
	case *ast.ForStmt:
		if a, ok := x.Init.(*ast.AssignStmt); ok && len(a.Rhs) == 1 && isLit(a.Rhs[0], "0") {
			m.replace(BugOffByOne, a.Rhs[0], "1", "the loop starts at 1 instead of 0")
		}
	case *ast.IfStmt:
		m.ifStmt(x, conds)
	case *ast.BlockStmt:
		m.block(x)
	case *ast.Ident:
		m.ident(x, locals)
	case *ast.BasicLit:
		m.literal(x, parent)
	}
}

func (m *mutator) binary(x *ast.BinaryExpr) {
	opEnd := m.off(x.OpPos) + len(x.Op.String())
	if to, ok := opSwap[x.Op]; ok && !(x.Op == token.ADD && m.isString(x)) {
		m.add(BugOperator, m.off(x.OpPos), opEnd, to.String(), "`%s` became `%s`", x.Op, to)
	}
	if to, ok := boundary[x.Op]; ok {
		m.add(BugOffByOne, m.off(x.OpPos), opEnd, to.String(), "`%s` became `%s`", x.Op, to)
	}
	if (x.Op == token.ADD || x.Op == token.SUB) && isLit(x.Y, "1") {
		m.replace(BugOffByOne, x, m.text(x.X), "the `%s 1` was dropped from `%s`", x.Op, short(m.text(x)))
	}
	if x.Op == token.LAND || x.Op == token.LOR {
		for _, pair := range [][2]ast.Expr{{x.X, x.Y}, {x.Y, x.X}} {
			keep, drop := pair[0], pair[1]
			kind := BugMissingLogic
			if x.Op == token.LAND && isNilCmp(drop) {
				kind = BugMissingCheck
			}
			m.replace(kind, x, m.text(keep), "the condition `%s` was dropped", short(m.text(drop)))
		}
	}
}

// shift is off-by-one on an index or slice bound: one more or one less.
func (m *mutator) shift(e ast.Expr) {
	if b, ok := e.(*ast.BinaryExpr); ok && (b.Op == token.ADD || b.Op == token.SUB) && isLit(b.Y, "1") {
		return // `i+1` becoming `i+1-1` is no bug; dropping the `+1` is a candidate already
	}
	at := m.off(e.End())
	for _, d := range []string{"+1", "-1"} {
		m.add(BugOffByOne, at, at, d, "`%s` became `%s%s`", short(m.text(e)), short(m.text(e)), d)
	}
}

func (m *mutator) ifStmt(x *ast.IfStmt, conds []ast.Expr) {
	// Excess logic: the condition gains a clause taken from a nearby condition of the function
	// (nearby: likely in scope, and the candidates stay linear in the function's size).
	at := 0
	for i, c := range conds {
		if c == x.Cond {
			at = i
		}
	}
	for _, c := range conds[max(at-2, 0):min(at+3, len(conds))] {
		if c == x.Cond || m.text(c) == m.text(x.Cond) || strings.Contains(m.text(x.Cond), m.text(c)) {
			continue
		}
		cond, extra := m.text(x.Cond), m.text(c)
		if b, ok := x.Cond.(*ast.BinaryExpr); ok && b.Op == token.LOR {
			cond = "(" + cond + ")"
		}
		if b, ok := c.(*ast.BinaryExpr); ok && (b.Op == token.LOR || b.Op == token.LAND) {
			extra = "(" + extra + ")"
		}
		m.replace(BugExcessLogic, x.Cond, cond+" && "+extra, "the condition `%s` gained `&& %s`", short(m.text(x.Cond)), short(m.text(c)))
	}
	if blk, ok := x.Else.(*ast.BlockStmt); ok {
		m.add(BugMissingLogic, m.off(x.Body.End()), m.off(blk.End()), "", "the else branch of `if %s` was dropped", short(m.text(x.Cond)))
	}
}

// block removes or repeats whole statements.
func (m *mutator) block(b *ast.BlockStmt) {
	for _, st := range b.List {
		start, end := m.lineSpan(st)
		switch s := st.(type) {
		case *ast.IfStmt:
			if s.Else != nil {
				continue
			}
			if isNilCmp(s.Cond) {
				repl := ""
				if s.Init != nil {
					// `if err := f(); err != nil {...}` keeps the call: `f()`.
					a, ok := s.Init.(*ast.AssignStmt)
					if !ok || a.Tok != token.DEFINE || len(a.Rhs) != 1 || len(a.Lhs) != 1 {
						continue
					}
					if _, ok := a.Rhs[0].(*ast.CallExpr); !ok {
						continue
					}
					repl, start, end = m.text(a.Rhs[0]), m.off(s.Pos()), m.off(s.End())
				}
				m.add(BugMissingCheck, start, end, repl, "the `%s` check was removed", short(m.text(s.Cond)))
			} else if s.Init == nil && len(b.List) > 1 {
				m.add(BugMissingLogic, start, end, "", "the branch `if %s` was removed", short(m.text(s.Cond)))
			}
		case *ast.ExprStmt, *ast.IncDecStmt:
			if len(b.List) > 1 {
				m.add(BugMissingLogic, start, end, "", "the statement `%s` was removed", short(m.text(s)))
			}
		case *ast.AssignStmt:
			if s.Tok != token.DEFINE && len(b.List) > 1 {
				m.add(BugMissingLogic, start, end, "", "the statement `%s` was removed", short(m.text(s)))
			}
		}
		switch s := st.(type) {
		case *ast.IncDecStmt:
			m.add(BugExcessLogic, m.off(s.End()), m.off(s.End()), "\n"+m.text(s), "`%s` is applied twice", short(m.text(s)))
		case *ast.AssignStmt:
			if _, op := opSwap[s.Tok]; op {
				m.add(BugExcessLogic, m.off(s.End()), m.off(s.End()), "\n"+m.text(s), "`%s` is applied twice", short(m.text(s)))
			}
		}
	}
}

// lineSpan is a statement's span widened to its whole lines when it has them to itself, so that
// removing it leaves no blank line behind to give the bug away.
func (m *mutator) lineSpan(n ast.Node) (int, int) {
	start, end := m.off(n.Pos()), m.off(n.End())
	ls := start
	for ls > 0 && (m.src[ls-1] == ' ' || m.src[ls-1] == '\t') {
		ls--
	}
	le := end
	for le < len(m.src) && (m.src[le] == ' ' || m.src[le] == '\t' || m.src[le] == '\r') {
		le++
	}
	if (ls == 0 || m.src[ls-1] == '\n') && le < len(m.src) && m.src[le] == '\n' {
		return ls, le + 1
	}
	return start, end
}

// ident is variable misuse: a use of a local variable becomes another local of an identical type
// visible at that point; and value misuse on true and false.
func (m *mutator) ident(id *ast.Ident, locals []*types.Var) {
	obj := m.info.Uses[id]
	if c, ok := obj.(*types.Const); ok && c.Parent() == types.Universe && (id.Name == "true" || id.Name == "false") {
		to := map[string]string{"true": "false", "false": "true"}[id.Name]
		m.replace(BugValue, id, to, "`%s` became `%s`", id.Name, to)
		return
	}
	v, ok := obj.(*types.Var)
	if !ok || id.Name == "_" || !isLocal(locals, v) {
		return
	}
	scope := m.info.Scopes[m.fd.Type]
	if scope == nil {
		return
	}
	inner := scope.Innermost(id.Pos())
	if inner == nil {
		return
	}
	for _, w := range locals {
		if w == v || w.Name() == v.Name() || w.Name() == "_" || !types.Identical(w.Type(), v.Type()) {
			continue
		}
		if _, vis := inner.LookupParent(w.Name(), id.Pos()); vis != w {
			continue
		}
		m.replace(BugVariable, id, w.Name(), "`%s` is used where `%s` belongs", w.Name(), v.Name())
	}
}

// literal is value misuse on integer literals: 0 and 1 trade places, others become 0 or double.
func (m *mutator) literal(l *ast.BasicLit, parent ast.Node) {
	if l.Kind != token.INT || strings.ContainsAny(l.Value, "xXoObB_") {
		return
	}
	if b, ok := parent.(*ast.BinaryExpr); ok && (b.Op == token.ADD || b.Op == token.SUB) && l.Value == "1" {
		return // `x+1` is off-by-one's
	}
	v, err := strconv.ParseInt(l.Value, 10, 64)
	if err != nil {
		return
	}
	var to []int64
	switch {
	case v == 0:
		to = []int64{1}
	case v == 1:
		to = []int64{0}
	case v < 1<<30:
		to = []int64{0, v * 2}
	}
	for _, t := range to {
		m.replace(BugValue, l, strconv.FormatInt(t, 10), "the value `%s` became `%d`", l.Value, t)
	}
}

// locals are the variables the function declares (parameters and results included), in order.
func (m *mutator) locals() []*types.Var {
	var out []*types.Var
	ast.Inspect(m.fd, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			if v, ok := m.info.Defs[id].(*types.Var); ok && !v.IsField() && v.Name() != "_" {
				out = append(out, v)
			}
		}
		return true
	})
	return out
}

func isLocal(locals []*types.Var, v *types.Var) bool {
	for _, w := range locals {
		if w == v {
			return true
		}
	}
	return false
}

func (m *mutator) isInt(e ast.Expr) bool {
	tv, ok := m.info.Types[e]
	if !ok || !tv.IsValue() || tv.Type == nil {
		return false
	}
	b, ok := tv.Type.Underlying().(*types.Basic)
	return ok && b.Info()&types.IsInteger != 0
}

func (m *mutator) isString(e ast.Expr) bool {
	tv, ok := m.info.Types[e]
	if !ok || tv.Type == nil {
		return true // unknown: + may join strings, and - would not type-check: skip it
	}
	b, ok := tv.Type.Underlying().(*types.Basic)
	return ok && b.Info()&types.IsString != 0
}

func isLit(e ast.Expr, value string) bool {
	l, ok := e.(*ast.BasicLit)
	return ok && l.Kind == token.INT && l.Value == value
}

// isNilCmp reports whether e is `x == nil` or `x != nil`.
func isNilCmp(e ast.Expr) bool {
	b, ok := e.(*ast.BinaryExpr)
	if !ok || (b.Op != token.EQL && b.Op != token.NEQ) {
		return false
	}
	isNil := func(e ast.Expr) bool { id, ok := e.(*ast.Ident); return ok && id.Name == "nil" }
	return isNil(b.X) || isNil(b.Y)
}

// short is code for a one-line description: its first line, at most 40 bytes.
func short(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 40 {
		cut := 40
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
