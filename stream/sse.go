package stream

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// streamHeaders stop proxies from buffering or transforming a stream.
func streamHeaders(h http.Header, contentType string) {
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "keep-alive")
}

func (srv *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	resume := r.URL.Query().Get("resume")
	var lastEvent uint64
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		// Event ids are "TOKEN.N": the token names the session, N counts
		// the messages the client has.
		var n string
		resume, n, _ = strings.Cut(last, ".")
		lastEvent, _ = strconv.ParseUint(n, 10, 64)
	}
	pad, ok := srv.padding(r)
	if !ok {
		http.Error(w, "pad: want a number of bytes, 0 to 65536", http.StatusBadRequest)
		return
	}
	s := srv.beginHTTPFrom(w, r, TransportSSE, resume, lastEvent)
	if s == nil {
		return
	}
	streamHeaders(w.Header(), "text/event-stream; charset=utf-8")
	wire := &sseWire{httpWire{w: w, rc: http.NewResponseController(w), gz: srv.startGzip(w, r)}, s.resume, &s.events}
	w.WriteHeader(http.StatusOK)
	code := ""
	if err := wire.writePadding(pad, true); err == nil {
		code = s.run(wire, r.Context().Done())
	}
	wire.end()
	srv.finish(s, code)
}

// sseWire sends each message as an unnamed event whose id is a resume
// point; heartbeats are comment lines.
type sseWire struct {
	httpWire
	resume string
	events *uint64 // the session's message count, for the close event's id
}

func (w *sseWire) writeBatch(msgs [][]byte, seq uint64, deadline time.Time) (int, error) {
	buf := getBuf()
	defer putBuf(buf)
	b := (*buf)[:0]
	if seq == 0 {
		b = append(b, "retry: 1000\n"...)
	}
	for i, m := range msgs {
		b = append(b, "id: "...)
		b = append(b, w.resume...)
		b = append(b, '.')
		b = strconv.AppendUint(b, seq+uint64(i)+1, 10)
		b = append(b, "\ndata: "...)
		b = append(b, m...)
		b = append(b, "\n\n"...)
	}
	*buf = b
	return w.write(b, deadline)
}

func (w *sseWire) writeHeartbeat(ts int64, deadline time.Time) (int, error) {
	b := strconv.AppendInt([]byte(": heartbeat "), ts, 10)
	return w.write(append(b, "\n\n"...), deadline)
}

func (w *sseWire) writeClose(code, text string, deadline time.Time) error {
	_, err := w.writeBatch([][]byte{encodeClose(code, text)}, *w.events, deadline)
	return err
}
