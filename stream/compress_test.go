package stream_test

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"tickerd/stream"
)

// A client that accepts gzip gets its SSE or NDJSON stream gzipped, and
// every batch can be decoded as it arrives, not only at the end of the
// stream: each update shows up while the stream stays open.
func TestGzipStreamsDeliverEachBatch(t *testing.T) {
	for _, tc := range []struct{ tr, path string }{{"ndjson", "/v1/stream"}, {"sse", "/v1/sse"}} {
		t.Run(tc.tr, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{})
			ts.put(t, "GZA", "bid", "1", "ask", "2", "status", "trading")
			req, _ := http.NewRequest(http.MethodGet, ts.base+tc.path+"?symbols=GZA", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			client := &http.Client{Transport: &http.Transport{DisableCompression: true}} // read the raw encoding
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
				t.Fatalf("Content-Encoding %q, want gzip", got)
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			lines := make(chan string, 100)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(zr)
				for sc.Scan() {
					if l := strings.TrimPrefix(sc.Text(), "data: "); strings.HasPrefix(l, "{") {
						lines <- l
					}
				}
			}()
			waitLine := func(want string) {
				t.Helper()
				timeout := time.After(5 * time.Second)
				for {
					select {
					case l, ok := <-lines:
						if !ok {
							t.Fatalf("stream ended before %s", want)
						}
						if strings.Contains(l, want) {
							return
						}
					case <-timeout:
						t.Fatalf("no line with %s within 5s: the batch is stuck in the compressor", want)
					}
				}
			}
			waitLine(`"type":"snapshot"`)
			for i := 1; i <= 5; i++ {
				bid := fmt.Sprintf("1.%d", i)
				ts.put(t, "GZA", "bid", bid)
				waitLine(`"bid":"` + bid + `"`)
			}
		})
	}
}

// A long-poll reply worth compressing is gzipped for a client that accepts
// it and decodes to the same reply; a client that does not gets it plain.
func TestGzipPollReply(t *testing.T) {
	ts := newTestServer(t, stream.Config{})
	syms := symbols("PZ", 30)
	for _, s := range syms {
		ts.put(t, s, "bid", "10.25", "ask", "10.5", "last", "10.3", "status", "trading")
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(gz bool) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, ts.base+"/v1/poll?symbols="+strings.Join(syms, ","), nil)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	resp, raw := get(true)
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct{ Messages []json.RawMessage }
	if err := json.Unmarshal(plain, &reply); err != nil || len(reply.Messages) != 2+len(syms) {
		t.Fatalf("decoded reply: %d messages, %v", len(reply.Messages), err)
	}
	t.Logf("poll reply: %d bytes gzipped, %d plain", len(raw), len(plain))
	if len(raw) >= len(plain) {
		t.Errorf("gzip did not shrink the reply: %d >= %d", len(raw), len(plain))
	}
	if resp, _ := get(false); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("a client without Accept-Encoding got %q", resp.Header.Get("Content-Encoding"))
	}
}

// A stream can open with a padding block (?pad=N, or the server's default)
// for proxies that hold back the start of a response: an SSE comment, or
// an NDJSON heartbeat with a pad member; then the stream as usual.
func TestPaddingBlock(t *testing.T) {
	ts := newTestServer(t, stream.Config{StreamPadding: 100})
	ts.put(t, "PAD", "bid", "1")
	for _, tc := range []struct {
		path string
		pad  int
		sse  bool
	}{
		{"/v1/stream?symbols=PAD&pad=4096", 4096, false},
		{"/v1/sse?symbols=PAD&pad=2048", 2048, true},
		{"/v1/stream?symbols=PAD", 100, false}, // the server's default
	} {
		resp, err := http.Get(ts.base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(resp.Body)
		first, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if tc.sse {
			if !strings.HasPrefix(first, ":") || len(strings.TrimRight(first, "\n")) != 1+tc.pad {
				t.Errorf("%s: first line %d bytes, want a comment of %d", tc.path, len(first), 1+tc.pad)
			}
		} else {
			var m struct {
				Type string `json:"type"`
				Pad  string `json:"pad"`
			}
			if err := json.Unmarshal([]byte(first), &m); err != nil || m.Type != "heartbeat" || len(m.Pad) != tc.pad {
				t.Errorf("%s: first line %.60q (%v), want a heartbeat with %d bytes of pad", tc.path, first, err, tc.pad)
			}
		}
		// The session message follows.
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v before the session message", tc.path, err)
			}
			if strings.Contains(line, `"type":"session"`) {
				break
			}
		}
		resp.Body.Close()
	}
	resp, err := http.Get(ts.base + "/v1/stream?symbols=PAD&pad=1000000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("pad=1000000: %d, want 400", resp.StatusCode)
	}
}
