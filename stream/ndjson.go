package stream

import (
	"net/http"
	"time"
)

func (srv *Server) serveNDJSON(w http.ResponseWriter, r *http.Request) {
	pad, ok := srv.padding(r)
	if !ok {
		http.Error(w, "pad: want a number of bytes, 0 to 65536", http.StatusBadRequest)
		return
	}
	s := srv.beginHTTP(w, r, TransportNDJSON, r.URL.Query().Get("resume"))
	if s == nil {
		return
	}
	streamHeaders(w.Header(), "application/x-ndjson")
	wire := &ndjsonWire{httpWire{w: w, rc: http.NewResponseController(w), gz: srv.startGzip(w, r)}}
	w.WriteHeader(http.StatusOK)
	code := ""
	if err := wire.writePadding(pad, false); err == nil {
		code = s.run(wire, r.Context().Done())
	}
	wire.end()
	srv.finish(s, code)
}

// ndjsonWire writes one message per line.
type ndjsonWire struct{ httpWire }

func (w *ndjsonWire) writeBatch(msgs [][]byte, _ uint64, deadline time.Time) (int, error) {
	buf := getBuf()
	defer putBuf(buf)
	b := (*buf)[:0]
	for _, m := range msgs {
		b = append(b, m...)
		b = append(b, '\n')
	}
	*buf = b
	return w.write(b, deadline)
}

func (w *ndjsonWire) writeHeartbeat(ts int64, deadline time.Time) (int, error) {
	return w.write(append(encodeHeartbeat(ts), '\n'), deadline)
}

func (w *ndjsonWire) writeClose(code, text string, deadline time.Time) error {
	_, err := w.write(append(encodeClose(code, text), '\n'), deadline)
	return err
}
