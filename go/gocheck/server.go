package gocheck

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// Request is one line of the server protocol. Src carries UTF-8 text; SrcB64 carries any bytes
// (JSON strings cannot hold invalid UTF-8). Gofmt and Decls default to true.
type Request struct {
	ID        json.RawMessage `json:"id"`
	Op        string          `json:"op"` // check (default), typecheck_package, mutate, ast, imports, ping
	Src       *string         `json:"src"`
	SrcB64    *string         `json:"src_b64"`
	Kind      string          `json:"kind"`
	Gofmt     *bool           `json:"gofmt"`
	Decls     *bool           `json:"decls"`
	Docs      bool            `json:"docs"`
	CodeHash  bool            `json:"code_hash"`
	TypeCheck bool            `json:"typecheck"`
	Files     []PackageFile   `json:"files"`
	Dir       string          `json:"dir"` // typecheck_package: the files' module root (imports resolve from its go.mod)
	TimeoutMS int             `json:"timeout_ms"`
	Seed      int64           `json:"seed"`      // mutate: the generator's seed
	PerFunc   int             `json:"per_func"`  // mutate: mutants per function
	BugKinds  []string        `json:"bug_kinds"` // mutate: kinds to plant (default all)
	// Batch holds several requests answered together, in order, in Results: one line each way
	// instead of one per source, which is most of the cost of a small snippet. Each item keeps
	// its own deadline (the batch's timeout_ms when it names none).
	Batch []Request `json:"batch"`
	// SrcLen and SrcOff take the source from the raw payload sent before this request's line
	// ("@N\n" then N bytes): no JSON escaping on either side, which for whole files cost about as
	// much as parsing them.
	SrcLen *int `json:"src_len"`
	SrcOff int  `json:"src_off"`
	// SrcLens is the short form of a batch of sources that lie one after another in the payload
	// and take the batch's options: {"src_lens": [a, b]} is {"batch": [{"src_len": a},
	// {"src_off": a, "src_len": b}]}. For 1 KB snippets the item objects were a tenth of the
	// client's work.
	SrcLens []int `json:"src_lens"`
	payload []byte
}

// Response is one line back: the Result of a check, or an error, or a timeout, with the request's id.
type Response struct {
	ID json.RawMessage `json:"id,omitempty"` // omitted only for a batch item that has none
	*Result
	FileErrors []FileDiagnostic `json:"file_errors,omitempty"`
	Mutants    []Mutant         `json:"mutants,omitempty"`
	Shape      []string         `json:"shape,omitempty"`   // op ast: the normalized syntax tree (see Shape)
	Fixed      *FixResult       `json:"fixed,omitempty"`   // op imports: the file with its imports fixed
	Results    []*Response      `json:"results,omitempty"` // a batch's answers, in its order
	TimedOut   bool             `json:"timed_out,omitempty"`
	Error      string           `json:"error,omitempty"`
}

// ServerConfig bounds the server's work.
type ServerConfig struct {
	Workers         int           // requests checked at once
	DefaultTimeout  time.Duration // per request, when the request names none
	MaxRequestBytes int           // longer lines are answered with an error and skipped
}

// Serve answers JSON-lines requests from r on w until r ends. A bad request gets an error
// response; it never stops the server. Responses may come out of order: match them by id.
func Serve(r io.Reader, w io.Writer, cfg ServerConfig) error {
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	// The parser allocates much and keeps little: at Go's default GOGC=100 the collector took a
	// quarter of the server's CPU on 1 KB functions. 200 halves that for 4 MB more resident memory
	// (measured on 4,000 snippets); a GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	out := &responder{w: bufio.NewWriterSize(w, 1<<16)}
	type job struct{ line, payload []byte }
	jobs := make(chan job, cfg.Workers)
	var wg sync.WaitGroup
	for i := 0; i < cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				out.send(handlePayload(j.line, j.payload, cfg.DefaultTimeout))
			}
		}()
	}
	br := bufio.NewReaderSize(r, 1<<20)
	var err error
	for {
		var line []byte
		line, err = readLine(br, cfg.MaxRequestBytes)
		if errors.Is(err, errTooLong) {
			// line holds the request's head: its id is readable when it is the first key.
			out.send(&Response{ID: leadingID(line), Error: fmt.Sprintf("bad request: longer than %d bytes", cfg.MaxRequestBytes)})
			continue
		}
		var payload []byte
		if len(line) > 0 && line[0] == '@' && err == nil {
			// "@N": N raw bytes follow, then the request line that refers to them.
			n, perr := strconv.Atoi(string(line[1:]))
			if perr != nil || n < 0 || (cfg.MaxRequestBytes > 0 && n > cfg.MaxRequestBytes) {
				out.send(&Response{ID: json.RawMessage("null"), Error: "bad request: payload header " + strconv.Quote(string(line))})
				return fmt.Errorf("unreadable payload header %q: the stream cannot be resynchronized", line)
			}
			payload = make([]byte, n)
			if _, err = io.ReadFull(br, payload); err != nil {
				break
			}
			line, err = readLine(br, cfg.MaxRequestBytes)
		}
		if len(line) > 0 {
			jobs <- job{line, payload}
		}
		if err != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if err == io.EOF {
		return nil
	}
	return err
}

type responder struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (r *responder) send(resp *Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(&Response{ID: resp.ID, Error: "encoding response: " + err.Error()})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w.Write(b)
	r.w.WriteByte('\n')
	r.w.Flush()
}

var errTooLong = errors.New("line too long")

// readLine reads one newline-terminated line of at most max bytes, the newline not counted. A
// longer one is consumed whole and reported as errTooLong with its first chunk, so that the
// caller can still read the id at its head.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		n := len(line) + len(chunk)
		if err == nil {
			n-- // the newline
		}
		if max > 0 && n > max {
			head := append(line, chunk[:min(len(chunk), 4096)]...)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, err
			}
			return head, errTooLong
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return trimNewline(line), err
	}
}

// leadingID reads the id of a request from its first bytes when "id" is the object's first key.
func leadingID(head []byte) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(head))
	var id json.RawMessage
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return json.RawMessage("null")
	}
	if t, err := dec.Token(); err != nil || t != "id" {
		return json.RawMessage("null")
	}
	if dec.Decode(&id) != nil {
		return json.RawMessage("null")
	}
	return id
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// handle decodes and answers one request, within its deadline.
func handle(line []byte, defTimeout time.Duration) *Response {
	return handlePayload(line, nil, defTimeout)
}

// handlePayload is handle for a request whose sources may lie in a raw payload.
func handlePayload(line, payload []byte, defTimeout time.Duration) *Response {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		id := json.RawMessage("null")
		var probe struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(line, &probe) == nil && probe.ID != nil {
			id = probe.ID
		}
		return &Response{ID: id, Error: "bad request: " + err.Error()}
	}
	if req.ID == nil {
		req.ID = json.RawMessage("null")
	}
	req.payload = payload
	if req.SrcLens != nil {
		if req.Batch != nil {
			return &Response{ID: req.ID, Error: "bad request: both batch and src_lens"}
		}
		req.Batch = make([]Request, len(req.SrcLens))
		off := 0
		for i, n := range req.SrcLens {
			req.Batch[i].SrcOff, req.Batch[i].SrcLen = off, &req.SrcLens[i]
			off += max(n, 0)
		}
	}
	if req.Batch != nil {
		resp := &Response{ID: req.ID, Results: make([]*Response, len(req.Batch))}
		for i := range req.Batch {
			item := &req.Batch[i]
			item.payload = payload
			inherit(item, &req)
			if item.Batch != nil {
				resp.Results[i] = &Response{ID: item.ID, Error: "bad request: a batch inside a batch"}
				continue
			}
			resp.Results[i] = withDeadline(item, defTimeout)
		}
		return resp
	}
	return withDeadline(&req, defTimeout)
}

// inherit gives a batch item the batch's options where the item names none: a batch of sources
// checked alike then carries its options once, not once per source.
func inherit(item, batch *Request) {
	if item.TimeoutMS == 0 {
		item.TimeoutMS = batch.TimeoutMS
	}
	if item.Op == "" {
		item.Op = batch.Op
	}
	if item.Kind == "" {
		item.Kind = batch.Kind
	}
	if item.Gofmt == nil {
		item.Gofmt = batch.Gofmt
	}
	if item.Decls == nil {
		item.Decls = batch.Decls
	}
	item.Docs = item.Docs || batch.Docs
	item.CodeHash = item.CodeHash || batch.CodeHash
	item.TypeCheck = item.TypeCheck || batch.TypeCheck
}

// withDeadline answers one request, or answers it as timed out when its deadline passes first.
func withDeadline(req *Request, defTimeout time.Duration) *Response {
	timeout := defTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	startExecutors()
	t := task{req: req, done: make(chan *Response, 1)}
	if timeout <= 0 {
		execs <- t
		return <-t.done
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	timedOut := &Response{ID: req.ID, TimedOut: true, Error: fmt.Sprintf("timed out after %v", timeout)}
	select {
	case execs <- t:
	case <-timer.C:
		return timedOut
	}
	select {
	case resp := <-t.done:
		return resp
	case <-timer.C:
		// The check goes on in its executor and its answer is dropped. A fresh executor keeps the
		// capacity; the client decides whether a server with abandoned work should be restarted.
		go executor()
		return timedOut
	}
}

// Checks run on long-lived executor goroutines rather than one new goroutine per request: the
// parser recurses deeply, and a new goroutine regrows (copies) its stack on every request, which
// cost about a fifth of the time of a small snippet.
type task struct {
	req  *Request
	done chan *Response
}

var (
	execs     = make(chan task)
	execsOnce sync.Once
)

func startExecutors() {
	execsOnce.Do(func() {
		for i := 0; i < runtime.GOMAXPROCS(0); i++ {
			go executor()
		}
	})
}

func executor() {
	for t := range execs {
		t.done <- answer(t.req)
	}
}

// answer does the work of one decoded request; a panic becomes an error response.
func answer(req *Request) (resp *Response) {
	resp = &Response{ID: req.ID}
	defer func() {
		if p := recover(); p != nil {
			resp = &Response{ID: req.ID, Error: fmt.Sprintf("internal error: %v\n%s", p, debug.Stack())}
		}
	}()
	switch req.Op {
	case "", "check", "ast", "imports":
		var src []byte
		switch {
		case req.SrcLen != nil:
			off, n := req.SrcOff, *req.SrcLen
			if off < 0 || n < 0 || off+n > len(req.payload) {
				return &Response{ID: req.ID, Error: fmt.Sprintf("bad request: src_off %d + src_len %d outside the %d-byte payload", off, n, len(req.payload))}
			}
			src = req.payload[off : off+n : off+n]
		case req.SrcB64 != nil:
			b, err := base64.StdEncoding.DecodeString(*req.SrcB64)
			if err != nil {
				return &Response{ID: req.ID, Error: "bad request: src_b64: " + err.Error()}
			}
			src = b
		case req.Src != nil:
			src = []byte(*req.Src)
		default:
			return &Response{ID: req.ID, Error: "bad request: no src, src_b64 or src_len"}
		}
		if !ValidKind(req.Kind) {
			return &Response{ID: req.ID, Error: "bad request: unknown kind " + req.Kind}
		}
		if req.Op == "imports" {
			fixed, errs := FixImports(src, orTrue(req.Gofmt))
			if errs != nil {
				resp.Result = &Result{OK: false, Kind: KindFile, Errors: errs}
			} else {
				resp.Result, resp.Fixed = &Result{OK: true, Kind: KindFile, Errors: []Diagnostic{}}, fixed
			}
			return resp
		}
		if req.Op == "ast" {
			shape, kind, ok := Shape(src, req.Kind)
			resp.Result, resp.Shape = &Result{OK: ok, Kind: kind, Errors: []Diagnostic{}}, shape
			return resp
		}
		resp.Result = Check(src, Options{
			Kind: req.Kind, Gofmt: orTrue(req.Gofmt), Decls: orTrue(req.Decls),
			Docs: req.Docs, CodeHash: req.CodeHash, TypeCheck: req.TypeCheck,
		})
	case "typecheck_package":
		resp.FileErrors = TypeCheckPackage(req.Files, req.Dir)
	case "mutate":
		if req.Src == nil {
			return &Response{ID: req.ID, Error: "bad request: mutate needs src"}
		}
		ms, err := Mutate([]byte(*req.Src), MutateOptions{Seed: req.Seed, PerFunc: req.PerFunc, Kinds: req.BugKinds})
		if err != nil {
			return &Response{ID: req.ID, Error: "mutate: " + err.Error()}
		}
		resp.Mutants = ms
	case "ping":
	default:
		return &Response{ID: req.ID, Error: "bad request: unknown op " + req.Op}
	}
	return resp
}

func orTrue(b *bool) bool { return b == nil || *b }
