package stream

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Compression of the HTTP transports. A client that sends
// "Accept-Encoding: gzip" (browsers do, EventSource included) gets SSE and
// NDJSON streams as one gzip stream, written so that every batch can be
// decoded as soon as it arrives: each write is deflated on its own, without
// keeping a window between writes (klauspost's stateless mode), so a
// compressed stream holds no compressor memory between writes, whatever
// the number of sessions. Long-poll replies over gzipMinReply are gzipped
// whole with a pooled compressor. Config.NoCompression turns it all off.

// gzipMinReply is the smallest long-poll reply worth compressing.
const gzipMinReply = 512

// acceptsGzip reports whether r accepts a gzip-encoded answer.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}

// gzipStream is an HTTP stream's gzip encoding.
type gzipStream struct {
	gz  *gzip.Writer
	out countWriter
}

// countWriter counts what goes through to the response.
type countWriter struct {
	w http.ResponseWriter
	n int
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// startGzip sets the headers of a gzip-encoded stream on w and returns its
// encoder, or nil when r does not accept gzip or the server does not
// compress.
func (srv *Server) startGzip(w http.ResponseWriter, r *http.Request) *gzipStream {
	w.Header().Add("Vary", "Accept-Encoding")
	if srv.cfg.NoCompression || !acceptsGzip(r) {
		return nil
	}
	w.Header().Set("Content-Encoding", "gzip")
	g := &gzipStream{out: countWriter{w: w}}
	g.gz, _ = gzip.NewWriterLevel(&g.out, gzip.StatelessCompression) // the level is valid
	return g
}

// write deflates b and returns the bytes that went to the response.
func (g *gzipStream) write(b []byte) (int, error) {
	g.out.n = 0
	_, err := g.gz.Write(b)
	return g.out.n, err
}

// close ends the gzip stream (its trailer).
func (g *gzipStream) close() error { return g.gz.Close() }

// httpWire writes to a streaming HTTP response, each write and flush under
// a deadline, gzipped when the client asked for it.
type httpWire struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	deadline writeDeadline
	gz       *gzipStream // nil: plain
}

func (h *httpWire) write(b []byte, deadline time.Time) (n int, err error) {
	h.deadline.apply(deadline, h.rc.SetWriteDeadline)
	if h.gz != nil {
		n, err = h.gz.write(b)
	} else {
		n, err = h.w.Write(b)
	}
	if err == nil {
		err = h.rc.Flush()
	}
	return n, err
}

// end finishes the encoding of a stream whose writer is done.
func (h *httpWire) end() {
	if h.gz != nil {
		h.deadline.apply(time.Now().Add(closeGrace), h.rc.SetWriteDeadline)
		if h.gz.close() == nil {
			_ = h.rc.Flush()
		}
	}
}

var gzipPool = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // the level is valid
	return gz
}}

// gzipBody returns b gzipped with a pooled compressor.
func gzipBody(b []byte) []byte {
	var out bytes.Buffer
	gz := gzipPool.Get().(*gzip.Writer)
	gz.Reset(&out)
	_, _ = gz.Write(b) // a bytes.Buffer does not fail
	_ = gz.Close()
	gz.Reset(nil)
	gzipPool.Put(gz)
	return out.Bytes()
}

// maxPadding bounds the padding block a stream may open with.
const maxPadding = 64 << 10

// padding returns the size of the padding block r asks for (?pad=N), or
// the server's default; ok is false for a malformed or oversized value.
func (srv *Server) padding(r *http.Request) (n int, ok bool) {
	v := r.URL.Query().Get("pad")
	if v == "" {
		return srv.cfg.StreamPadding, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxPadding {
		return 0, false
	}
	return n, true
}

// writePadding sends a block of n padding bytes ahead of a stream's first
// message, for intermediaries that hold back the start of a response until
// they have seen enough of it: an SSE comment, or an NDJSON heartbeat with
// a pad member (clients ignore both).
func (h *httpWire) writePadding(n int, sse bool) error {
	if n <= 0 {
		return nil
	}
	var b []byte
	if sse {
		b = append(b, ':')
		b = append(b, bytes.Repeat([]byte{' '}, n)...)
		b = append(b, "\n\n"...)
	} else {
		b = append(b, `{"type":"heartbeat","ts":`...)
		b = strconv.AppendInt(b, time.Now().UnixMicro(), 10)
		b = append(b, `,"pad":"`...)
		b = append(b, bytes.Repeat([]byte{' '}, n)...)
		b = append(b, "\"}\n"...)
	}
	_, err := h.write(b, time.Now().Add(closeGrace))
	return err
}
