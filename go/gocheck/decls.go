package gocheck

import (
	"go/ast"
	"go/scanner"
	"go/token"
	"hash/fnv"
	"strconv"
	"strings"
)

// declarations lists the top-level declarations of a parsed file or declaration list, in source
// order, positioned in the caller's text.
func declarations(p *parsed, lines []int, src []byte, docs, codeHash bool) []Decl {
	var out []Decl
	add := func(kind, name, recv string, node ast.Node, doc *ast.CommentGroup) {
		start, end := p.offset(node.Pos()), p.offset(node.End())
		end = max(end, start) // a node of a broken parse may lack its end
		d := Decl{
			Kind: kind, Name: name, Recv: recv, Start: start, End: end,
			StartLine: position(lines, src, start, "").Line,
			EndLine:   position(lines, src, end, "").Line,
		}
		if docs && doc != nil {
			d.Doc = strings.TrimSpace(doc.Text())
		}
		if codeHash {
			d.Code = tokenHash(src[start:end])
		}
		out = append(out, d)
	}
	for _, decl := range p.file.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Recv != nil && len(d.Recv.List) > 0 {
				recv := recvName(d.Recv.List[0].Type)
				add("method", recv+"."+d.Name.Name, recv, d, d.Doc)
			} else {
				add("func", d.Name.Name, "", d, d.Doc)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				// A spec's own doc comment wins; a lone spec takes the group's.
				switch s := spec.(type) {
				case *ast.TypeSpec:
					kind := "type"
					switch s.Type.(type) {
					case *ast.InterfaceType:
						kind = "interface"
					case *ast.StructType:
						kind = "struct"
					}
					add(kind, s.Name.Name, "", specNode(d, s), specDoc(d, s.Doc))
				case *ast.ValueSpec:
					kind := "var"
					if d.Tok == token.CONST {
						kind = "const"
					}
					for _, n := range s.Names {
						if n.Name != "_" {
							add(kind, n.Name, "", specNode(d, s), specDoc(d, s.Doc))
						}
					}
				}
			}
		}
	}
	return out
}

// specNode is the node whose span a spec's declaration covers: the whole group for `type T int`,
// the spec alone inside `var ( ... )`.
func specNode(d *ast.GenDecl, s ast.Spec) ast.Node {
	if d.Lparen == token.NoPos {
		return d
	}
	return s
}

func specDoc(d *ast.GenDecl, doc *ast.CommentGroup) *ast.CommentGroup {
	if doc == nil && d.Lparen == token.NoPos {
		return d.Doc
	}
	return doc
}

// recvName is the receiver's type name with pointers and type parameters stripped:
// (s *List[T]) is "List".
func recvName(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.ParenExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.Ident:
			return t.Name
		default:
			return "?"
		}
	}
}

// tokenHash hashes the tokens of src as go/scanner reads them: comments and layout leave it
// unchanged, a changed token or literal (a space inside a string included) changes it. A
// semicolon counts whether a newline or ';' put it there, and not at all before ')' or '}',
// where Go lets it be left out (`{ return x }` is `{\n\treturn x\n}`).
func tokenHash(src []byte) string {
	var s scanner.Scanner
	fset := token.NewFileSet()
	s.Init(fset.AddFile("", -1, len(src)), src, nil, 0)
	h := fnv.New64a()
	buf := make([]byte, 0, 64)
	semicolon := false // one is held back until the next token says whether it counts
	for {
		_, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.SEMICOLON {
			semicolon = true
			continue
		}
		buf = buf[:0]
		if semicolon && tok != token.RPAREN && tok != token.RBRACE {
			buf = append(buf, ';', 0)
		}
		semicolon = false
		buf = strconv.AppendInt(buf, int64(tok), 10)
		buf = append(buf, ' ')
		buf = append(buf, lit...)
		buf = append(buf, 0)
		h.Write(buf)
	}
	return strconv.FormatUint(h.Sum64()|1<<63, 16) // the top bit set: always 16 digits
}
