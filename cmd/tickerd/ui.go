package main

import (
	"net/http"

	"tickerd/web"
)

// registerUI serves the browser dashboard at / and the JavaScript client
// module at /v1/client.js.
func registerUI(mux *http.ServeMux) {
	mux.Handle("GET /", web.Handler())
	mux.Handle("GET /v1/client.js", web.ClientHandler())
}
