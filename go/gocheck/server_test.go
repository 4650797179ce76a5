package gocheck

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// serve runs Serve over the request lines and returns the responses by id (the id's raw JSON).
func serve(t *testing.T, cfg ServerConfig, lines ...string) map[string]map[string]any {
	t.Helper()
	var out strings.Builder
	if err := Serve(strings.NewReader(strings.Join(lines, "\n")+"\n"), &out, cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var resp map[string]any
		if err := json.Unmarshal([]byte(line), &resp); err != nil {
			t.Fatalf("response is not JSON: %q", line)
		}
		id, _ := json.Marshal(resp["id"])
		got[string(id)] = resp
	}
	return got
}

// bigSrc is a statement list that takes over 100 milliseconds to parse and print as kind
// stmts: far longer than the 1 ms deadline or the 20 ms head start the tests below rely on.
func bigSrc() string {
	return strings.Repeat("x = append(x, f(a+b*c, []int{1, 2, 3}))\n", 10_000)
}

func request(fields map[string]any) string {
	b, _ := json.Marshal(fields)
	return string(b)
}

func TestServeCheckAndPing(t *testing.T) {
	got := serve(t, ServerConfig{Workers: 2},
		`{"id": 1, "src": "package p\n\nfunc f() {}\n"}`,
		`{"id": "two", "op": "ping"}`,
		// any bytes travel as base64: 0xff is no UTF-8
		request(map[string]any{"id": 3, "src_b64": base64.StdEncoding.EncodeToString([]byte("var s = \"\xff\"\n"))}),
		`{"id": {"batch": 4}, "src": "x :=", "kind": "stmts", "gofmt": false, "decls": false}`,
	)
	if len(got) != 4 {
		t.Fatalf("want 4 responses, got %v", got)
	}
	if r := got["1"]; r["ok"] != true || r["kind"] != "file" || r["gofmt"] != true || len(r["decls"].([]any)) != 1 {
		t.Errorf("check: %v", r)
	}
	if r := got[`"two"`]; len(r) != 1 {
		t.Errorf("ping answers its id alone: %v", r)
	}
	errs := got["3"]["errors"].([]any)
	if got["3"]["ok"] != false || len(errs) != 1 || errs[0].(map[string]any)["col"] != float64(10) {
		t.Errorf("src_b64: %v", got["3"])
	}
	if r := got[`{"batch":4}`]; r["ok"] != false || r["kind"] != "stmts" || r["gofmt"] != nil || r["decls"] != nil {
		t.Errorf("object id, gofmt and decls off: %v", r)
	}
}

func TestServeBadRequests(t *testing.T) {
	long := request(map[string]any{"id": 9, "src": strings.Repeat("x", 200)})
	exact := `{"id": 10, "src": "` + strings.Repeat(" ", 100-len(`{"id": 10, "src": ""}`)) + `"}`
	got := serve(t, ServerConfig{MaxRequestBytes: 100},
		`{not json`,
		`{"id": 5, "src": 3}`,
		`{"id": 6, "op": "compile"}`,
		`{"id": 7, "kind": "stmts"}`,
		`{"id": 8, "src": "x", "kind": "go"}`,
		long,
		exact,
		`{"id": 11, "src_b64": "!!"}`,
		`{"id": 12, "op": "ping"}`,
	)
	for id, want := range map[string]string{
		"null": "bad request: invalid character", "5": "bad request: json: cannot unmarshal number",
		"6": "bad request: unknown op compile", "7": "bad request: no src, src_b64 or src_len",
		"8": "bad request: unknown kind go", "9": "bad request: longer than 100 bytes",
		"11": "bad request: src_b64:",
	} {
		if msg, _ := got[id]["error"].(string); !strings.HasPrefix(msg, want) {
			t.Errorf("id %s: error %q, want prefix %q", id, msg, want)
		}
	}
	if len(exact) != 100 || got["10"]["ok"] != true {
		t.Errorf("a line of exactly the limit (%d bytes) is answered: %v", len(exact), got["10"])
	}
	if _, ok := got["12"]; !ok {
		t.Error("the server stopped answering after bad requests")
	}
}

func TestServeTimeout(t *testing.T) {
	got := serve(t, ServerConfig{Workers: 1},
		request(map[string]any{"id": 1, "src": bigSrc(), "kind": "stmts", "timeout_ms": 1}),
		`{"id": 2, "src": "x := 1", "timeout_ms": 10000}`,
		`{"id": 3, "op": "ping"}`,
	)
	if got["1"]["timed_out"] != true || !strings.HasPrefix(got["1"]["error"].(string), "timed out after 1ms") {
		t.Errorf("slow request: %v", got["1"])
	}
	if got["2"]["ok"] != true || got["3"] == nil {
		t.Errorf("requests after a timeout: %v %v", got["2"], got["3"])
	}
}

// TestServeOutOfOrder: a quick request sent after a slow one is answered first, under its own id.
func TestServeOutOfOrder(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(inR, outW, ServerConfig{Workers: 2}); outW.Close() }()
	go func() {
		fmt.Fprintln(inW, request(map[string]any{"id": "slow", "src": bigSrc(), "kind": "stmts"}))
		time.Sleep(20 * time.Millisecond) // let the slow one start first
		fmt.Fprintln(inW, `{"id": "quick", "src": "x := 1"}`)
		inW.Close()
	}()
	var order []string
	sc := bufio.NewScanner(outR)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var resp struct {
			ID string `json:"id"`
			OK bool   `json:"ok"`
		}
		if err := json.Unmarshal(sc.Bytes(), &resp); err != nil || !resp.OK {
			t.Fatalf("response %q: %v", sc.Text(), err)
		}
		order = append(order, resp.ID)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "quick,slow" {
		t.Errorf("order %v, want quick then slow", order)
	}
}

func TestServeTypecheckPackage(t *testing.T) {
	files := []PackageFile{
		{Name: "a.go", Src: "package p\n\nfunc helper() int { return 1 }\n"},
		// The //line comment must not move the error or rename the file.
		{Name: "b.go", Src: "package p\n\n//line other.go:40\nvar s string = helper()\n"},
	}
	got := serve(t, ServerConfig{},
		request(map[string]any{"id": 1, "op": "typecheck_package", "files": files}),
		request(map[string]any{"id": 2, "op": "typecheck_package", "files": files[:1]}),
		request(map[string]any{"id": 3, "op": "typecheck_package", "files": []PackageFile{
			files[0], {Name: "c.go", Src: "package p\n\nfunc g() {\n"}}}),
	)
	var errs1 []FileDiagnostic
	b, _ := json.Marshal(got["1"]["file_errors"])
	json.Unmarshal(b, &errs1)
	want := FileDiagnostic{File: "b.go", Diagnostic: Diagnostic{Line: 4, Col: 16, Offset: 45,
		Msg: "cannot use helper() (value of type int) as string value in variable declaration"}}
	if len(errs1) != 1 || errs1[0] != want {
		t.Errorf("across two files:\n got  %+v\n want %+v", errs1, want)
	}
	if _, ok := got["2"]["file_errors"]; ok || got["2"]["error"] != nil {
		t.Errorf("a clean package has no file_errors: %v", got["2"])
	}
	// A syntax error is reported even though the partial AST type-checks clean.
	var errs3 []FileDiagnostic
	b, _ = json.Marshal(got["3"]["file_errors"])
	json.Unmarshal(b, &errs3)
	eof := func(msg string) FileDiagnostic {
		return FileDiagnostic{File: "c.go", Diagnostic: Diagnostic{Line: 4, Col: 1, Offset: 22, Msg: msg}}
	}
	if len(errs3) != 2 || errs3[0] != eof("expected ';', found 'EOF'") || errs3[1] != eof("expected '}', found 'EOF'") {
		t.Errorf("syntax errors in a package file: %+v", errs3)
	}
}

// TestServeRawPayload: sources sent raw after an "@N" header, referred to by offset and length,
// with a batch's options inherited by items that name none.
func TestServeRawPayload(t *testing.T) {
	payload := "func f() {}\nx +\xff"
	stream := fmt.Sprintf("@%d\n%s", len(payload), payload) +
		`{"id":1,"kind":"decls","gofmt":false,"batch":[{"src_len":12},{"src_off":12,"src_len":3,"kind":"stmts"},{"src_off":10,"src_len":9}]}` + "\n" +
		`{"id":2,"src":"x := 1"}` + "\n"
	var out strings.Builder
	if err := Serve(strings.NewReader(stream), &out, ServerConfig{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	var first, second Response
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 responses, got %q", out.String())
	}
	for _, l := range lines {
		var r Response
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if string(r.ID) == "1" {
			first = r
		} else {
			second = r
		}
	}
	if len(first.Results) != 3 {
		t.Fatalf("batch answered %d items, want 3", len(first.Results))
	}
	a, b, c := first.Results[0], first.Results[1], first.Results[2]
	if !a.OK || a.Kind != "decls" || a.Gofmt != nil || len(a.Decls) != 1 {
		t.Errorf("item 0 (inherits kind decls, gofmt off): %+v", a.Result)
	}
	if b.OK || b.Kind != "stmts" || b.Errors[0].Offset > 3 {
		t.Errorf("item 1 (its own kind, bytes 12..15 only): %+v", b.Result)
	}
	if !strings.Contains(c.Error, "outside the 16-byte payload") {
		t.Errorf("item 2 out of range: %q", c.Error)
	}
	if second.Result == nil || !second.OK {
		t.Errorf("a plain line after a payload: %+v", second)
	}
}

// TestServeSrcLens: src_lens is a batch of consecutive sources in the payload, answered in order,
// its items without ids; with a batch beside it the request is refused.
func TestServeSrcLens(t *testing.T) {
	payload := "func f() {}x +y := 2"
	stream := fmt.Sprintf("@%d\n%s", len(payload), payload) +
		`{"id":7,"kind":"auto","gofmt":false,"decls":false,"src_lens":[11,3,6]}` + "\n" +
		fmt.Sprintf("@%d\n%s", len(payload), payload) +
		`{"id":8,"src_lens":[1],"batch":[{"src_len":1}]}` + "\n"
	var out strings.Builder
	if err := Serve(strings.NewReader(stream), &out, ServerConfig{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), `"id":null`) {
		t.Errorf("batch items carry null ids: %s", out.String())
	}
	byID := map[string]Response{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r Response
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		byID[string(r.ID)] = r
	}
	rs := byID["7"].Results
	if len(rs) != 3 {
		t.Fatalf("src_lens [11,3,6] answered %d items: %s", len(rs), out.String())
	}
	if !rs[0].OK || rs[0].Kind != "decls" || rs[1].OK || rs[1].Errors[0].Offset > 3 || !rs[2].OK || rs[2].Kind != "stmts" {
		t.Errorf("items: %+v %+v %+v", rs[0].Result, rs[1].Result, rs[2].Result)
	}
	if e := byID["8"].Error; !strings.Contains(e, "both batch and src_lens") {
		t.Errorf("batch with src_lens: %q", e)
	}
}

// TestServeBadPayloadHeader: a header that is not a length leaves the stream unreadable; the
// server says so and stops rather than reading garbage as requests.
func TestServeBadPayloadHeader(t *testing.T) {
	var out strings.Builder
	err := Serve(strings.NewReader("@x\n{\"id\":1,\"src\":\"x\"}\n"), &out, ServerConfig{Workers: 1})
	if err == nil || !strings.Contains(out.String(), "payload header") {
		t.Fatalf("err %v, out %q", err, out.String())
	}
}
