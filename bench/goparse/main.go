// Command goparse is the in-process limit for bench/validator.py: it loads the files named on
// stdin (one path a line) into memory, then parses all of them with go/parser in the mode
// gocheck uses, on -workers goroutines, -repeat times, and prints files/s and MB/s as JSON.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"go/parser"
	"go/token"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "parsing goroutines")
	repeat := flag.Int("repeat", 3, "passes over the files; the fastest counts")
	flag.Parse()
	var srcs [][]byte
	var total int
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		b, err := os.ReadFile(sc.Text())
		if err != nil {
			panic(err)
		}
		srcs = append(srcs, b)
		total += len(b)
	}
	best := time.Duration(1 << 62)
	var failed int64
	for r := 0; r < *repeat; r++ {
		failed = 0
		var next int64 = -1
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < *workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := atomic.AddInt64(&next, 1)
					if int(i) >= len(srcs) {
						return
					}
					fset := token.NewFileSet()
					_, err := parser.ParseFile(fset, "", srcs[i], parser.AllErrors|parser.ParseComments|parser.SkipObjectResolution)
					if err != nil {
						atomic.AddInt64(&failed, 1)
					}
				}
			}()
		}
		wg.Wait()
		if d := time.Since(start); d < best {
			best = d
		}
	}
	s := best.Seconds()
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"files": len(srcs), "bytes": total, "failed": failed, "seconds": s,
		"files_per_s": float64(len(srcs)) / s, "mb_per_s": float64(total) / 1e6 / s, "workers": *workers,
	})
}
