package docstest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"tickerd/internal/streamtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	docPath = "docs/protocol.md"      // the document under test, from the repository root
	docBase = "http://127.0.0.1:8080" // the server URL its examples use
)

// client never keeps idle connections, so no transport goroutine outlives
// a test.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// TestProtocolExamples runs the examples of docs/protocol.md against a
// real tickerd with a small simulated feed.
func TestProtocolExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs tickerd and the examples")
	}
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, docPath))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	base := startTickerd(t, buildTickerd(t, root))
	t.Run("go", func(t *testing.T) { testGoExamples(t, doc, base) })
	t.Run("curl", func(t *testing.T) { testCurlExample(t, doc, base) })
}

// testGoExamples builds every ```go block as a program of its own, runs
// it with the server's URL as its argument (as the document shows) and
// waits for it to print an update of a symbol it asked for.
func testGoExamples(t *testing.T, doc, base string) {
	blocks := codeBlocks(doc, "go")
	if len(blocks) == 0 {
		t.Fatalf("%s has no ```go block", docPath)
	}
	for i, src := range blocks {
		t.Run(fmt.Sprint(i+1), func(t *testing.T) {
			symbols := requestedSymbols(src)
			if len(symbols) == 0 {
				t.Fatalf("example %d names no symbols=... to stream", i+1)
			}
			bin := buildExample(t, src)
			line := runExample(t, bin, base, symbols)
			t.Logf("example printed %q", line)
		})
	}
}

var symbolsParam = regexp.MustCompile(`[?&]symbols=([A-Z0-9._:,-]+)`)

// requestedSymbols returns the symbols an example's stream URL asks for.
func requestedSymbols(src string) []string {
	m := symbolsParam.FindStringSubmatch(src)
	if m == nil {
		return nil
	}
	return strings.Split(m[1], ",")
}

// viewLine is what the example prints for a snapshot or an update: the
// symbol's merged view, every field filled in.
var viewLine = regexp.MustCompile(`^(snapshot|update)\s+(\S+)\s+seq=(\d+) bid=\S+ ask=\S+ last=\S+$`)

// exampleRun is how long an example runs against the server.
const exampleRun = 3 * time.Second

// runExample runs bin against base for exampleRun and checks what it
// printed: only views of the symbols it asked for, complete (updates were
// merged into the snapshot), seq never going backwards, and at least one
// update. It returns the first update line.
func runExample(t *testing.T, bin, base string, symbols []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), exampleRun)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, base)
	stdout, stderr := new(streamtest.SyncBuffer), new(streamtest.SyncBuffer)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start example: %v", err)
	}
	_ = cmd.Wait() // killed at the deadline: the example streams forever
	out := strings.TrimSpace(stdout.String())
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nstdout:\n%s\nstderr:\n%s", fmt.Sprintf(format, args...), out, stderr)
	}
	if ctx.Err() == nil {
		fail("example exited before %v: %v", exampleRun, cmd.ProcessState)
	}
	first := ""
	lastSeq := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		m := viewLine.FindStringSubmatch(line)
		if m == nil || !slices.Contains(symbols, m[2]) {
			fail("line %q is not a complete view of one of %v", line, symbols)
		}
		seq, _ := strconv.ParseUint(m[3], 10, 64)
		if seq < lastSeq[m[2]] {
			fail("seq of %s went back from %d to %d", m[2], lastSeq[m[2]], seq)
		}
		lastSeq[m[2]] = seq
		if m[1] == "update" && first == "" {
			first = line
		}
	}
	if first == "" {
		fail("example printed no update of %v in %v", symbols, exampleRun)
	}
	return first
}

// buildExample writes src as the main package of a module of its own and
// builds it, so the example may use nothing but the standard library.
func buildExample(t *testing.T, src string) string {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example\n\ngo 1.26\n",
		"main.go": src,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "example")
	goBuild(t, dir, bin, ".")
	return bin
}

// The curl example: an ingest command followed by its reply as a comment,
// then a watch command whose output is the next ```text block.
var (
	ingestCmd = regexp.MustCompile(`^curl .*--data-binary '([^']+)' (\S+/v1/ingest)$`)
	watchCmd  = regexp.MustCompile(`^curl -N '(\S+/v1/stream\?[^']+)'$`)
)

const replyPrefix = "# → "

// testCurlExample posts the document's ingest line, checks the reply it
// documents, then opens its watch URL and checks the messages it shows.
func testCurlExample(t *testing.T, doc, base string) {
	var body, ingestURL, reply, watchLine, watchURL string
	for _, block := range codeBlocks(doc, "sh") {
		lines := strings.Split(block, "\n")
		for i, line := range lines {
			if m := ingestCmd.FindStringSubmatch(line); m != nil && body == "" {
				body, ingestURL = m[1], m[2]
				if i+1 < len(lines) && strings.HasPrefix(lines[i+1], replyPrefix) {
					reply = strings.TrimPrefix(lines[i+1], replyPrefix)
				}
			}
			if m := watchCmd.FindStringSubmatch(line); m != nil && watchURL == "" {
				watchLine, watchURL = line, m[1]
			}
		}
	}
	if body == "" || reply == "" || watchURL == "" {
		t.Fatalf("%s: want a ```sh block with `curl ... --data-binary 'LINE' %s/v1/ingest`, "+
			"its reply on the next line as %q, and `curl -N '%s/v1/stream?...'`", docPath, docBase, replyPrefix, docBase)
	}

	resp, err := client.Post(rebase(t, ingestURL, base), "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s %s", ingestURL, resp.Status, got)
	}
	if !jsonEqual(t, got, []byte(reply)) {
		t.Errorf("ingest reply:\n got %s\nwant %s (as documented)", bytes.TrimSpace(got), reply)
	}

	outputs := codeBlocks(doc[strings.Index(doc, watchLine):], "text")
	if len(outputs) == 0 {
		t.Fatalf("%s: no ```text block showing the output of %s", docPath, watchLine)
	}
	var want []message
	for _, line := range strings.Split(strings.TrimSpace(outputs[0]), "\n") {
		want = append(want, decodeLine(t, []byte(line))...)
	}
	got2 := readStream(t, rebase(t, watchURL, base), len(want))
	if !reflect.DeepEqual(got2, want) {
		t.Errorf("%s printed (ids and times aside):\n got %+v\nwant %+v (as documented)", watchLine, got2, want)
	}
}

// message is what the curl test compares of a server message: ids, resume
// tokens and timestamps differ from run to run and are left out.
type message struct {
	Type    string
	Symbol  string
	Symbols []string
	Seq     uint64
	Fields  map[string]string
}

// decodeLine decodes one NDJSON line: a message or a batch of them.
func decodeLine(t *testing.T, line []byte) []message {
	t.Helper()
	line = bytes.TrimSpace(line)
	if len(line) > 0 && line[0] != '[' {
		line = append(append([]byte{'['}, line...), ']')
	}
	var ms []message
	if err := json.Unmarshal(line, &ms); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	return ms
}

// readStream opens an NDJSON stream and returns its first n messages.
func readStream(t *testing.T, url string, n int) []message {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	var ms []message
	r := bufio.NewReader(resp.Body)
	for len(ms) < n {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("GET %s: after %d messages %+v: %v", url, len(ms), ms, err)
		}
		ms = append(ms, decodeLine(t, line)...)
	}
	return ms[:n]
}

// rebase points a URL of the document at the test's server.
func rebase(t *testing.T, url, base string) string {
	t.Helper()
	if !strings.HasPrefix(url, docBase+"/") {
		t.Fatalf("%s: example URL %s does not start with %s", docPath, url, docBase)
	}
	return base + strings.TrimPrefix(url, docBase)
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// codeBlocks returns the bodies of md's fenced code blocks tagged lang.
func codeBlocks(md, lang string) []string {
	var blocks, cur []string
	in := false
	for _, line := range strings.Split(md, "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```"+lang:
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n")+"\n")
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// repoRoot returns the directory of tickerd's go.mod above the test.
func repoRoot(t *testing.T) string {
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module tickerd\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod of module tickerd above the test")
		}
		dir = parent
	}
}

// goTool returns the go command of the toolchain running the test.
func goTool(t *testing.T) string {
	//lint:ignore SA1019 the examples must build with the toolchain that runs this test, which GOROOT names.
	goroot := runtime.GOROOT()
	bin := filepath.Join(goroot, "bin", "go")
	if _, err := os.Stat(bin); goroot == "" || err != nil {
		p, err := exec.LookPath("go")
		if err != nil {
			t.Fatalf("no go command in GOROOT %q or PATH", goroot)
		}
		return p
	}
	return bin
}

// goBuild runs `go build -o out pkg` in dir, with no workspace and no
// toolchain download.
func goBuild(t *testing.T, dir, out, pkg string) {
	t.Helper()
	cmd := exec.Command(goTool(t), "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s in %s: %v\n%s", pkg, dir, err, b)
	}
}

func buildTickerd(t *testing.T, root string) string {
	bin := filepath.Join(t.TempDir(), "tickerd")
	goBuild(t, root, bin, "./cmd/tickerd")
	return bin
}

// startTickerd starts bin on a free loopback port with a small simulated
// feed, waits until it is ready and returns its base URL. The process gets
// SIGTERM (then SIGKILL) when the test ends.
func startTickerd(t *testing.T, bin string) string {
	const attempts = 3 // the free port may be taken before tickerd binds it
	for i := 1; ; i++ {
		base, err := tryStart(t, bin)
		if err == nil {
			return base
		}
		if i == attempts {
			t.Fatal(err)
		}
		t.Log(err)
	}
}

func tryStart(t *testing.T, bin string) (string, error) {
	addr := freeAddr(t)
	cmd := exec.Command(bin, "-addr", addr, "-sim-symbols", "20", "-sim-rate", "200")
	logs := new(streamtest.SyncBuffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tickerd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("tickerd did not exit within 10s of SIGTERM; log:\n%s", logs)
		}
	})
	base := "http://" + addr
	deadline := time.After(15 * time.Second)
	for !ready(base) {
		select {
		case <-exited:
			return "", fmt.Errorf("tickerd exited before it was ready (%s); log:\n%s", cmd.ProcessState, logs)
		case <-deadline:
			return "", fmt.Errorf("tickerd not ready on %s within 15s; log:\n%s", base, logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return base, nil
}

func ready(base string) bool {
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
