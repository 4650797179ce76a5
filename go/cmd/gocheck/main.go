// Command gocheck checks Go source with go/parser: one-shot on files and folders, or as a
// JSON-lines server on stdin/stdout (-serve). Exit status: 0 no findings, 1 findings, 2 usage.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"gocoder/go/gocheck"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("gocheck", flag.ContinueOnError)
	fl.SetOutput(stderr)
	serve := fl.Bool("serve", false, "answer JSON-lines requests on stdin until it closes")
	workers := fl.Int("workers", runtime.GOMAXPROCS(0), "with -serve: requests checked at once")
	timeout := fl.Duration("timeout", 10*time.Second, "with -serve: default per-request deadline")
	maxReq := fl.Int("max-request", 256<<20, "with -serve: longest request line in bytes")
	asJSON := fl.Bool("json", false, "print one JSON object per file")
	kind := fl.String("kind", "auto", "input kind: auto, file, decls, stmts, expr")
	typecheck := fl.Bool("typecheck", false, "also type-check each file (standard-library imports resolved)")
	all := fl.Bool("all", false, "also walk vendor/ and testdata/ folders")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: gocheck [-json] [-typecheck] [-kind K] FILE|DIR|- ...\n       gocheck -serve")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *serve {
		err := gocheck.Serve(stdin, stdout, gocheck.ServerConfig{Workers: *workers, DefaultTimeout: *timeout, MaxRequestBytes: *maxReq})
		if err != nil {
			fmt.Fprintln(stderr, "gocheck:", err)
			return 2
		}
		return 0
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return 2
	}
	if !gocheck.ValidKind(*kind) {
		fmt.Fprintf(stderr, "gocheck: unknown -kind %q (want auto, file, decls, stmts or expr)\n", *kind)
		return 2
	}
	files, err := expand(fl.Args(), *all)
	if err != nil {
		fmt.Fprintln(stderr, "gocheck:", err)
		return 2
	}
	opts := gocheck.Options{Kind: *kind, Gofmt: true, Decls: true, TypeCheck: *typecheck}
	enc := json.NewEncoder(stdout)
	status := 0
	for _, name := range files {
		var src []byte
		if name == "-" {
			src, err = io.ReadAll(stdin)
		} else {
			src, err = os.ReadFile(name)
		}
		if err != nil {
			fmt.Fprintln(stderr, "gocheck:", err)
			return 2
		}
		r := gocheck.Check(src, opts)
		if !r.OK || (r.TypeOK != nil && !*r.TypeOK) {
			status = 1
		}
		if *asJSON {
			enc.Encode(struct {
				File string `json:"file"`
				*gocheck.Result
			}{name, r})
			continue
		}
		for _, d := range append(r.Errors, r.TypeErrors...) {
			fmt.Fprintf(stdout, "%s:%d:%d: %s\n", name, d.Line, d.Col, d.Msg)
		}
	}
	return status
}

// expand turns arguments into the .go files to check, walking folders (skipping vendor/ and
// testdata/ unless all) in lexical order.
func expand(args []string, all bool) ([]string, error) {
	var files []string
	for _, a := range args {
		if a == "-" {
			files = append(files, a)
			continue
		}
		info, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, a)
			continue
		}
		err = filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != a && !all && (d.Name() == "vendor" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(path, ".go") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}
