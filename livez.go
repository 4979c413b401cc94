package edge

import (
	"io"
	"net/http"
)

// livez answers GET /livez on the admin listener: 200 "ok" for as long
// as the process serves HTTP. It checks nothing else, on purpose: it is
// what a liveness probe (Kubernetes) asks, and restarting an edge because
// its origin is down or it is draining would only throw away a cache
// that still serves. /healthz, the readiness probe, takes such an edge
// out of the load balancer instead. Like /healthz, it needs no token.
func livez(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}
