package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fake is a scripted tickerd for client tests: every symbol has updates
// seq 2..n after a snapshot at seq 1, sent at once on subscribe, then
// heartbeats. Its final state is what GET /v1/snapshot serves.
type fake struct {
	symbols []string
	n       int          // last seq of every symbol
	mode    string       // "" or a misbehaviour: seq_backwards, error, close, max_age, bad_json, other_values (snapshot)
	ageOuts atomic.Int32 // max_age mode: connections still to close
	mu      sync.Mutex
	polls   map[string]int // poll session -> polls served
	stopped chan struct{}
}

func newFake(t testing.TB, mode string) (*fake, string) {
	t.Helper()
	f := &fake{symbols: []string{"AAA", "BBB", "CCC", "DDD", "EEE"}, n: 7, mode: mode,
		polls: map[string]int{}, stopped: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/symbols", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"symbols": f.symbols})
	})
	mux.HandleFunc("GET /v1/snapshot", f.snapshot)
	mux.HandleFunc("GET /v1/ws", f.ws)
	mux.HandleFunc("GET /v1/sse", f.sse)
	mux.HandleFunc("GET /v1/stream", f.ndjson)
	mux.HandleFunc("GET /v1/poll", f.poll)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		close(f.stopped)
		srv.CloseClientConnections()
		srv.Close()
	})
	return f, srv.URL
}

func now() int64 { return time.Now().UnixMicro() }

func (f *fake) fields(seq int) string {
	if seq == 1 {
		return `{"bid":"1.5","ask":"2","status":"trading"}`
	}
	return fmt.Sprintf(`{"bid":"%d.5"}`, seq)
}

// script returns the messages of one subscription, one JSON text each.
func (f *fake) script(r *http.Request, session bool) []string {
	syms := strings.Split(r.URL.Query().Get("symbols"), ",")
	var out []string
	if session {
		out = append(out, `{"type":"session","session":"s1","resume":"r1"}`)
	}
	q, _ := json.Marshal(syms)
	out = append(out, fmt.Sprintf(`{"type":"subscribed","id":0,"symbols":%s}`, q))
	for i, s := range syms {
		if i == 0 && f.mode == "no_snapshot" {
			continue
		}
		out = append(out, fmt.Sprintf(`{"type":"snapshot","symbol":%q,"seq":1,"ts":%d,"fields":%s}`, s, now(), f.fields(1)))
	}
	for seq := 2; seq <= f.n; seq++ {
		for _, s := range syms {
			out = append(out, fmt.Sprintf(`{"type":"update","symbol":%q,"seq":%d,"ts":%d,"fields":%s}`, s, seq, now(), f.fields(seq)))
		}
	}
	switch f.mode {
	case "seq_backwards":
		out = append(out, fmt.Sprintf(`{"type":"update","symbol":%q,"seq":3,"ts":%d,"fields":{"bid":"3.5"}}`, syms[0], now()),
			fmt.Sprintf(`{"type":"update","symbol":%q,"seq":%d,"ts":%d,"fields":{"bid":"%d.5"}}`, syms[0], f.n, now(), f.n))
	case "error":
		out = append(out, `{"type":"error","id":0,"code":"not_entitled","symbol":"ZZZ","message":"no"}`)
	case "bad_json":
		out = append(out, `{"type":"update",`)
	}
	return out
}

// batches groups messages three to a JSON array, as a server batching
// writes would.
func batches(msgs []string) []string {
	var out []string
	for i := 0; i < len(msgs); i += 3 {
		j := min(i+3, len(msgs))
		if j-i == 1 {
			out = append(out, msgs[i])
			continue
		}
		out = append(out, "["+strings.Join(msgs[i:j], ",")+"]")
	}
	return out
}

// idle sends heartbeats until the client goes or the test ends; for the
// close and max_age modes it closes the stream once instead.
func (f *fake) idle(r *http.Request, send func(string) error) {
	switch {
	case f.mode == "close":
		_ = send(`{"type":"close","code":"slow_consumer","message":"too slow"}`)
		return
	case f.mode == "max_age" && f.ageOuts.Add(-1) >= 0:
		_ = send(`{"type":"close","code":"max_age","message":"reconnect"}`)
		return
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-f.stopped:
			return
		case <-tick.C:
			if send(fmt.Sprintf(`{"type":"heartbeat","ts":%d}`, now())) != nil {
				return
			}
		}
	}
}

func (f *fake) ws(w http.ResponseWriter, r *http.Request) {
	c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	go func() { // read to see the client's close
		for {
			if _, _, err := c.NextReader(); err != nil {
				c.Close()
				return
			}
		}
	}()
	send := func(m string) error { return c.WriteMessage(websocket.TextMessage, []byte(m)) }
	for _, m := range batches(f.script(r, false)) {
		if send(m) != nil {
			return
		}
	}
	f.idle(r, send)
	if f.mode == "close" || f.mode == "max_age" {
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye"))
	}
}

func (f *fake) stream(w http.ResponseWriter, r *http.Request, ctype string, frame func(string) string) {
	w.Header().Set("Content-Type", ctype)
	fl := w.(http.Flusher)
	send := func(m string) error {
		if _, err := fmt.Fprint(w, frame(m)); err != nil {
			return err
		}
		fl.Flush()
		return nil
	}
	for _, m := range batches(f.script(r, true)) {
		if send(m) != nil {
			return
		}
	}
	f.idle(r, send)
}

func (f *fake) sse(w http.ResponseWriter, r *http.Request) {
	n := 0
	f.stream(w, r, "text/event-stream", func(m string) string {
		n++
		if strings.Contains(m, `"heartbeat"`) {
			return ": heartbeat\n\n"
		}
		// Split the JSON over two data lines, as a server may.
		i := strings.Index(m, ",")
		return fmt.Sprintf("id: %d\r\ndata: %s\ndata:%s\n\n", n, m[:i+1], m[i+1:])
	})
}

func (f *fake) ndjson(w http.ResponseWriter, r *http.Request) {
	f.stream(w, r, "application/x-ndjson", func(m string) string { return m + "\n\n" })
}

func (f *fake) poll(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	id := r.URL.Query().Get("session")
	if id == "" {
		id = fmt.Sprintf("p%p", r)
		f.mu.Lock()
		f.polls[id] = 0
		f.mu.Unlock()
		msgs := f.script(r, true)
		fmt.Fprintf(w, `{"session":%q,"messages":[%s]}`, id, strings.Join(msgs, ","))
		return
	}
	f.mu.Lock()
	n, ok := f.polls[id]
	f.polls[id] = n + 1
	f.mu.Unlock()
	if !ok {
		http.Error(w, `{"error":"unknown session"}`, http.StatusNotFound)
		return
	}
	select {
	case <-time.After(150 * time.Millisecond):
	case <-r.Context().Done():
		return
	case <-f.stopped:
	}
	fmt.Fprintf(w, `{"session":%q,"messages":[[{"type":"heartbeat","ts":%d}]]}`, id, now())
}

func (f *fake) snapshot(w http.ResponseWriter, r *http.Request) {
	ask := "2"
	if f.mode == "other_values" {
		ask = "3"
	}
	var snaps []string
	for _, s := range strings.Split(r.URL.Query().Get("symbols"), ",") {
		snaps = append(snaps, fmt.Sprintf(`{"type":"snapshot","symbol":%q,"seq":%d,"ts":%d,"fields":{"bid":"%d.5","ask":%q,"status":"trading"}}`,
			s, f.n, now(), f.n, ask))
	}
	fmt.Fprintf(w, `{"snapshots":[%s],"errors":[]}`, strings.Join(snaps, ","))
}
