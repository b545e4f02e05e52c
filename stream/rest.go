package stream

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"tickerd/conflate"
	"tickerd/entitlements"
	"tickerd/feed"
)

// symbolError is one entry of a snapshot reply's errors.
type symbolError struct {
	Symbol string `json:"symbol"`
	Code   string `json:"code"`
}

// serveSnapshot answers GET /v1/snapshot[?symbols=A,B][&fields=..]:
// {"snapshots":[snapshot messages],"errors":[{"symbol","code"}]}. Each
// symbol comes from the tier the caller may see it in; without symbols,
// every entitled symbol.
func (srv *Server) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	p, _, ok := srv.authRequest(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	fields := feed.AllFields
	if f := q.Get("fields"); f != "" {
		fs, err := parseFields(splitList(f))
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		fields = fs
	}
	syms := splitList(q.Get("symbols"))
	if len(syms) == 0 {
		syms = srv.entitledSymbols(p)
	}
	buf := getBuf()
	defer putBuf(buf)
	b := append((*buf)[:0], `{"snapshots":[`...)
	errs := []symbolError{}
	n := 0
	for _, sym := range syms {
		if !feed.ValidSymbol(sym) {
			errs = append(errs, symbolError{Symbol: truncate(sym, 40), Code: CodeBadRequest})
			continue
		}
		tier := srv.tierOf(p, sym)
		if tier == entitlements.None {
			srv.m.clientError(CodeNotEntitled)
			errs = append(errs, symbolError{Symbol: sym, Code: CodeNotEntitled})
			continue
		}
		delayed := tier == entitlements.Delayed
		e := srv.source(delayed).Get(sym)
		var v *conflate.View
		if e != nil {
			v = e.Read()
		}
		if v == nil || v.Seq == 0 {
			errs = append(errs, symbolError{Symbol: sym, Code: CodeNotFound})
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, encodeData(e, kindSnapshot, v, v.Set&fields, delayed)...)
	}
	b = append(b, `],"errors":`...)
	eb, _ := json.Marshal(errs)
	b = append(b, eb...)
	b = append(b, "}\n"...)
	*buf = b
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// serveSymbols answers GET /v1/symbols: every symbol holding data that
// the caller may see, in either tier, sorted.
func (srv *Server) serveSymbols(w http.ResponseWriter, r *http.Request) {
	p, _, ok := srv.authRequest(w, r, false)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_ = json.NewEncoder(w).Encode(map[string][]string{"symbols": srv.entitledSymbols(p)})
}

// entitledSymbols returns the symbols holding data that p may see. A
// delayed-only symbol is listed once it has data in the realtime cache,
// even if its delayed data is still pending.
func (srv *Server) entitledSymbols(p *entitlements.Principal) []string {
	all := srv.src.Symbols()
	if srv.cfg.Auth == nil {
		return all
	}
	out := all[:0]
	for _, sym := range all {
		if srv.tierOf(p, sym) != entitlements.None {
			out = append(out, sym)
		}
	}
	return out
}

// serveSessionOp answers POST /v1/sessions/{id}: one client op for an SSE
// or NDJSON session. The reply is a JSON array of the op's acks and errors;
// data follows on the session's stream.
func (srv *Server) serveSessionOp(w http.ResponseWriter, r *http.Request) {
	s := srv.session(r.PathValue("id"))
	if s == nil {
		writeJSONError(w, http.StatusNotFound, "unknown session")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(srv.cfg.MaxMessageBytes)))
	var replies [][]byte
	switch {
	case err != nil:
		replies = [][]byte{srv.errorReply(nil, CodeBadRequest, "", fmt.Sprintf("op body unreadable or over %d bytes", srv.cfg.MaxMessageBytes))}
	default:
		if op, perr := ParseOp(body); perr != nil {
			replies = [][]byte{srv.opErrorReply(perr)}
		} else {
			replies = s.apply(op)
		}
	}
	b := []byte{'['}
	for i, m := range replies {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m...)
	}
	b = append(b, "]\n"...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
