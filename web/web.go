// Package web serves the browser dashboard and the JavaScript client module
// it is built on (/v1/client.js): static files embedded in the binary, so
// the page works with no network beyond the tickerd it came from.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard's files.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}
