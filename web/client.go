package web

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"time"
)

//go:embed client.js
var clientJS []byte

// ClientHandler serves the JavaScript client module (client.js) at
// GET /v1/client.js: public, cross-origin importable (module scripts are
// fetched with CORS), revalidated by ETag so a new server's client is
// picked up at once.
func ClientHandler() http.Handler {
	sum := sha256.Sum256(clientJS)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "client.js", time.Time{}, bytes.NewReader(clientJS))
	})
}
