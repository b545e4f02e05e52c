package main

import (
	"net/http"

	"tickerd/web"
)

// registerUI serves the browser dashboard at /.
func registerUI(mux *http.ServeMux) {
	mux.Handle("GET /", web.Handler())
}
