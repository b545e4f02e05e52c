package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// httpConn is one HTTP/1.1 connection owned by one session: requests are
// written by hand and responses read with http.ReadResponse, so a
// streaming session costs one goroutine and two small buffers, not the
// three goroutines of an http.Transport connection.
type httpConn struct {
	c  net.Conn
	br *bufio.Reader
}

// openHTTP connects to u's host. The connection closes when ctx is done.
// With slowBPS > 0 it is a slow reader's (slowDialer).
func openHTTP(ctx context.Context, u *url.URL, timeout time.Duration, slowBPS int) (*httpConn, func(), error) {
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	dial := (&net.Dialer{Timeout: timeout}).DialContext
	if slowBPS > 0 {
		dial = slowDialer(timeout, slowBPS)
	}
	c, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, nil, err
	}
	if u.Scheme == "https" {
		tc := tls.Client(c, &tls.Config{ServerName: u.Hostname()})
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = c.Close()
			return nil, nil, err
		}
		c = tc
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	closer := func() {
		stop()
		_ = c.Close()
	}
	return &httpConn{c: c, br: bufio.NewReaderSize(c, 1024)}, closer, nil
}

// get sends GET u and reads the response head. The caller reads the body.
// The deadline applies to the whole exchange until cleared.
func (h *httpConn) get(u *url.URL, accept string, deadline time.Time) (*http.Response, error) {
	if err := h.c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(u.RequestURI())
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(u.Host)
	b.WriteString("\r\nUser-Agent: tickerbench\r\nAccept: ")
	b.WriteString(accept)
	b.WriteString("\r\n\r\n")
	if _, err := io.WriteString(h.c, b.String()); err != nil {
		return nil, err
	}
	return http.ReadResponse(h.br, &http.Request{Method: http.MethodGet, URL: u})
}

// streamURL returns base+path with the subscription in the query.
func streamURL(base, path string, symbols []string, maxHz int) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/") + path)
	if err != nil {
		return nil, err
	}
	var q strings.Builder
	q.WriteString("symbols=")
	for i, s := range symbols {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(url.QueryEscape(s))
	}
	if maxHz > 0 {
		q.WriteString("&maxHz=")
		q.WriteString(strconv.Itoa(maxHz))
	}
	u.RawQuery = q.String()
	return u, nil
}

// openStream connects and sends GET for a streaming transport (SSE,
// NDJSON), checking the status and content type.
func (s *session) openStream(ctx context.Context, path, accept string) (*http.Response, func(), error) {
	u, err := streamURL(s.url, path, s.symbols, s.run.cfg.MaxHz)
	if err != nil {
		return nil, nil, &connectError{err: err}
	}
	start := time.Now()
	timeout := s.run.cfg.connectTimeout()
	hc, closer, err := openHTTP(ctx, u, timeout, s.readBPS())
	if err != nil {
		return nil, nil, &connectError{err: err}
	}
	resp, err := hc.get(u, accept, start.Add(timeout))
	if err != nil {
		closer()
		return nil, nil, &connectError{err: err}
	}
	if resp.StatusCode != http.StatusOK {
		closer()
		return nil, nil, &connectError{status: resp.StatusCode}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, accept) {
		s.violation("content_type")
	}
	if err := hc.c.SetDeadline(time.Time{}); err != nil {
		closer()
		return nil, nil, &connectError{err: err}
	}
	s.connectedAfter(time.Since(start))
	return resp, closer, nil
}

// streamEnd classifies how an HTTP stream ended.
func (s *session) streamEnd(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return nil
	case s.closeCode != "":
		return &closedError{code: s.closeCode}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errEOF
	}
	return &readError{err: err}
}

// lineReader splits a stream into lines (LF or CRLF) in one buffer that
// grows only for lines longer than it. A line is valid until the next call.
type lineReader struct {
	r          io.Reader
	buf        []byte
	start, end int
	err        error
}

func newLineReader(r io.Reader, size int) *lineReader {
	return &lineReader{r: r, buf: make([]byte, size)}
}

// next returns the next line without its line ending. At the end of the
// stream it returns the error that ended it; a final unterminated line is
// dropped, as a cut-off message would be.
func (l *lineReader) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(l.buf[l.start:l.end], '\n'); i >= 0 {
			line := l.buf[l.start : l.start+i]
			l.start += i + 1
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, nil
		}
		if l.err != nil {
			return nil, l.err
		}
		if l.start > 0 {
			l.end = copy(l.buf, l.buf[l.start:l.end])
			l.start = 0
		}
		if l.end == len(l.buf) {
			l.buf = append(l.buf, make([]byte, len(l.buf))...)
		}
		n, err := l.r.Read(l.buf[l.end:])
		l.end += n
		if err != nil {
			l.err = err
		}
	}
}

// httpStatusError is a non-200 reply after a session was established.
type httpStatusError struct{ status int }

func (e *httpStatusError) Error() string { return fmt.Sprintf("bench: HTTP status %d", e.status) }
