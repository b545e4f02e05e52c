package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"
)

// ClientHandler serves the JavaScript client module (static/client.js) at
// GET /v1/client.js: public, cross-origin importable (module scripts are
// fetched with CORS), revalidated by ETag so a new server's client is
// picked up at once.
func ClientHandler() http.Handler {
	src, err := static.ReadFile("static/client.js")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	sum := sha256.Sum256(src)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "client.js", time.Time{}, bytes.NewReader(src))
	})
}
