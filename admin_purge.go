package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/prometheus/client_golang/prometheus"
)

// The purge API of the admin listener (issue 12): POST /purge, POST
// /warm and GET /cache. They need the bearer token always: without one
// configured they answer 403.

// MaxPurgeBody bounds the body of POST /purge and POST /warm; larger
// bodies get 413 and purge nothing.
const MaxPurgeBody = 1 << 20

// maxSelectors bounds the selectors of one purge: more purge nothing and
// get 400 (a tag or a prefix says it in one).
const maxSelectors = 10_000

// purgeWait is how long POST /purge waits for a prefix, tag or "all"
// purge to be applied to every entry, to report how many it purged. The
// purge is in force before that: the wait only makes the count complete.
const purgeWait = 2 * time.Second

// errPurgeDisabled is the 403's text when no admin token is configured.
const errPurgeDisabled = "purge disabled: no admin token configured"

// PurgeRequest is the body of POST /purge:
//
//	{"urls": ["/widget/v1/login.js"], "prefixes": ["/tenants/"], "tags": ["release-42"],
//	 "all": false, "host": "cdn.example.com", "soft": true, "id": "<journal id>"}
//
// At least one selector (urls, prefixes, tags, or all). Without host, it
// applies to every site.
type PurgeRequest struct {
	// URLs are object paths ("/widget/v1/login.js"): every variant of
	// each, in every coding.
	URLs []string `json:"urls,omitempty"`
	// Prefixes are path prefixes, each starting with "/".
	Prefixes []string `json:"prefixes,omitempty"`
	// Tags are surrogate keys (the S3 object's x-amz-meta-surrogate-key).
	Tags []string `json:"tags,omitempty"`
	// All purges every object (of the host's site, with Host).
	All bool `json:"all,omitempty"`
	// Host limits the purge to the site that serves this Host.
	Host string `json:"host,omitempty"`
	// Soft: nil or true is a soft purge (revalidate, serve stale if the
	// origin fails); false is hard (never served again, not even stale).
	Soft *bool `json:"soft,omitempty"`
	// ID is the journal record's id: a purge whose id was applied before
	// is not applied again.
	ID string `json:"id,omitempty"`
}

// Hard reports whether p is a hard purge.
func (p *PurgeRequest) Hard() bool { return p.Soft != nil && !*p.Soft }

// Mode is "soft" or "hard".
func (p *PurgeRequest) Mode() string {
	if p.Hard() {
		return "hard"
	}
	return "soft"
}

// DecodePurgeRequest reads and validates a purge request: one JSON object
// of the fields of PurgeRequest and nothing else. Errors say what is
// wrong in words a person with curl understands.
func DecodePurgeRequest(r io.Reader) (PurgeRequest, error) {
	var p PurgeRequest
	if err := decodeStrict(r, &p, "urls, prefixes, tags, all, host, soft, id"); err != nil {
		return PurgeRequest{}, err
	}
	if err := p.Validate(); err != nil {
		return PurgeRequest{}, err
	}
	return p, nil
}

// decodeStrict decodes exactly one JSON object into v, refusing unknown
// fields (known lists them, for the error) and anything after it.
func decodeStrict(r io.Reader, v any, known string) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var maxErr *http.MaxBytesError
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &maxErr):
			return err
		case errors.Is(err, io.EOF):
			return errors.New("empty body: want a JSON object")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fmt.Errorf("unknown field %s (known: %s)", strings.TrimPrefix(err.Error(), "json: unknown field "), known)
		case errors.As(err, &syn):
			return fmt.Errorf("malformed JSON at byte %d: %v", syn.Offset, syn)
		case errors.As(err, &typ):
			if typ.Field != "" {
				return fmt.Errorf("field %q: want %s, not a JSON %s", typ.Field, jsonType(typ.Type.String()), typ.Value)
			}
			return fmt.Errorf("want a JSON object, not a JSON %s", typ.Value)
		}
		return fmt.Errorf("malformed JSON: %v", err)
	}
	if dec.More() {
		return errors.New("malformed JSON: more than one value in the body")
	}
	if _, err := dec.Token(); err != io.EOF {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return err
		}
		return errors.New("malformed JSON: data after the object")
	}
	return nil
}

func jsonType(goType string) string {
	switch goType {
	case "[]string":
		return "a list of strings"
	case "string":
		return "a string"
	case "bool", "*bool":
		return "true or false"
	}
	return goType
}

// Validate checks p's selectors: at least one; paths and prefixes
// starting with "/"; tags one word each; a plain host; an id of safe
// characters.
func (p *PurgeRequest) Validate() error {
	n := len(p.URLs) + len(p.Prefixes) + len(p.Tags)
	switch {
	case n == 0 && !p.All:
		return errors.New(`empty purge: give urls, prefixes, tags, or "all": true`)
	case n > 0 && p.All:
		return errors.New(`"all": true purges everything: give no other selector with it`)
	case n > maxSelectors:
		return fmt.Errorf("%d selectors: at most %d per purge (a prefix or a tag selects many objects at once)", n, maxSelectors)
	}
	for i, u := range p.URLs {
		if err := checkPurgePath(u, true); err != nil {
			return fmt.Errorf("urls[%d] %q: %v", i, u, err)
		}
	}
	for i, pf := range p.Prefixes {
		if err := checkPurgePath(pf, false); err != nil {
			return fmt.Errorf("prefixes[%d] %q: %v", i, pf, err)
		}
	}
	for i, t := range p.Tags {
		if err := checkTag(t); err != nil {
			return fmt.Errorf("tags[%d] %q: %v", i, t, err)
		}
	}
	if err := checkHost(p.Host); err != nil {
		return fmt.Errorf("host %q: %v", p.Host, err)
	}
	if err := checkID(p.ID); err != nil {
		return fmt.Errorf("id %q: %v", p.ID, err)
	}
	return nil
}

// checkPurgePath checks a URL path (exact) or a path prefix.
func checkPurgePath(p string, exact bool) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		if strings.Contains(p, "://") {
			return errors.New("must be a path starting with / (give the host in \"host\")")
		}
		return errors.New("must start with /")
	case len(p) > maxKeyLen:
		return fmt.Errorf("longer than %d bytes", maxKeyLen)
	case strings.ContainsAny(p, "?#"):
		return errors.New("no query string or fragment: the edge keys objects by path alone")
	}
	if exact {
		if _, ok := cleanPath(p); !ok {
			return errors.New("not a path the edge serves (no ., .. or control characters)")
		}
		return nil
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return errors.New("control characters and backslashes are never in a path")
		}
	}
	return nil
}

// maxTagLen bounds a tag (Fastly's limit for a surrogate key).
const maxTagLen = 1024

func checkTag(t string) error {
	switch {
	case t == "":
		return errors.New("empty")
	case len(t) > maxTagLen:
		return fmt.Errorf("longer than %d bytes", maxTagLen)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c == 0x7f {
			return errors.New("one word: no spaces or control characters (surrogate keys are space-separated)")
		}
	}
	return nil
}

func checkHost(h string) error {
	if len(h) > 253 {
		return errors.New("longer than 253 bytes")
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@' {
			return errors.New("a host name, without scheme, path or spaces")
		}
	}
	return nil
}

// maxIDLen bounds a purge id (a journal id is 37 characters).
const maxIDLen = 128

func checkID(id string) error {
	if len(id) > maxIDLen {
		return fmt.Errorf("longer than %d characters", maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':') {
			return errors.New("letters, digits and . - _ : only")
		}
	}
	return nil
}

// PurgeResult is the answer to a purge.
type PurgeResult struct {
	Name   string `json:"name"`
	Region string `json:"region,omitempty"`
	ID     string `json:"id,omitempty"`
	Mode   string `json:"mode"`
	// Entries counts the objects purged (each with all its variants).
	Entries int64 `json:"entries"`
	// Pending: the purge is in force, but the background pass that
	// applies it to every entry had not finished when the answer was
	// sent; Entries counts those purged so far.
	Pending bool `json:"pending,omitempty"`
	// Duplicate: a purge with this id was applied before; nothing done.
	Duplicate bool `json:"duplicate,omitempty"`
	// Warning tells of a purge in force that will not survive a restart
	// (the disk refuses writes).
	Warning string  `json:"warning,omitempty"`
	TookMS  float64 `json:"took_ms"`
}

// ErrUnknownHost: no site serves the host a purge names (and there is
// no default site).
var ErrUnknownHost = errors.New("no site serves this host")

// Purge applies a validated purge request: in force for every request
// from when it returns, on every tier, also after a restart. It waits up
// to wait for a prefix, tag or "all" purge to reach every entry, to count
// them. The journal's records come through here too.
func (h *Handler) Purge(req PurgeRequest, wait time.Duration) (PurgeResult, error) {
	start := time.Now()
	res := PurgeResult{Name: h.name, Region: h.region, ID: req.ID, Mode: req.Mode()}
	sites := h.sites
	if req.Host != "" {
		s := h.route(req.Host)
		if s == nil {
			return res, fmt.Errorf("%w: %q", ErrUnknownHost, req.Host)
		}
		sites = []*site{s}
	}
	var sels []cache.Selector
	for _, s := range sites {
		for _, u := range req.URLs {
			p, ok := s.objectPath(u)
			if !ok {
				return res, fmt.Errorf("url %q: not a path the edge serves", u) // validated before: a caller's bug
			}
			sels = append(sels, cache.Selector{Prefix: s.key(p), Exact: true},
				cache.Selector{Prefix: s.key(p) + varySeparator}) // its responses by Vary, if any
			if s.keepQuery {
				sels = append(sels, cache.Selector{Prefix: s.key(p) + "?"}) // and by query string
			}
		}
		for _, pf := range req.Prefixes {
			sels = append(sels, cache.Selector{Prefix: s.key(pf)})
		}
		for _, t := range req.Tags {
			sels = append(sels, cache.Selector{Prefix: s.key("/"), Tag: t})
		}
		if req.All {
			sels = append(sels, cache.Selector{Prefix: s.key("/")})
		}
	}
	pg, err := h.cache.Purge(cache.Purge{ID: req.ID, Selectors: sels, Hard: req.Hard()})
	if err != nil {
		return res, err
	}
	if pg.Duplicate {
		res.Duplicate = true
	} else {
		h.purgeMetrics.count(&req)
		if pg.NotDurable != nil {
			res.Warning = "in force, but not written to disk (it will not survive a restart): " + pg.NotDurable.Error()
			h.errorLog.Error("purge: in force but not written to disk", "id", req.ID, "err", pg.NotDurable)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		var complete bool
		res.Entries, complete = pg.Wait(ctx)
		cancel()
		res.Pending = !complete
	}
	res.TookMS = float64(time.Since(start).Microseconds()) / 1000
	return res, nil
}

// purgeMetrics count purges by selector and mode.
type purgeMetrics struct {
	purges *prometheus.CounterVec
}

func newPurgeMetrics(reg *prometheus.Registry) *purgeMetrics {
	m := &purgeMetrics{purges: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edge_purges_total",
		Help: "Purges applied (from the admin API or the journal), by selector (url, prefix, tag, all) and mode (soft, hard): one per URL, prefix or tag.",
	}, []string{"selector", "mode"})}
	for _, sel := range []string{"url", "prefix", "tag", "all"} {
		for _, mode := range []string{"soft", "hard"} {
			m.purges.WithLabelValues(sel, mode)
		}
	}
	reg.MustRegister(m.purges)
	return m
}

func (m *purgeMetrics) count(req *PurgeRequest) {
	mode := req.Mode()
	m.purges.WithLabelValues("url", mode).Add(float64(len(req.URLs)))
	m.purges.WithLabelValues("prefix", mode).Add(float64(len(req.Prefixes)))
	m.purges.WithLabelValues("tag", mode).Add(float64(len(req.Tags)))
	if req.All {
		m.purges.WithLabelValues("all", mode).Inc()
	}
}

// servePurge answers POST /purge.
func (h *Handler) servePurge(w http.ResponseWriter, r *http.Request) {
	req, err := DecodePurgeRequest(http.MaxBytesReader(w, r.Body, MaxPurgeBody))
	if err != nil {
		h.badRequest(w, r, "purge", err)
		return
	}
	res, err := h.Purge(req, purgeWait)
	switch {
	case errors.Is(err, ErrUnknownHost), errors.Is(err, cache.ErrPurgeTooLarge):
		h.badRequest(w, r, "purge", err)
		return
	case errors.Is(err, cache.ErrPurgeBacklog):
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		h.errorLog.Error("purge failed", "id", req.ID, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "purge failed: "+err.Error())
		return
	}
	h.errorLog.Info("purge", "id", req.ID, "mode", res.Mode, "host", req.Host, "urls", len(req.URLs),
		"prefixes", len(req.Prefixes), "tags", len(req.Tags), "all", req.All, "entries", res.Entries,
		"pending", res.Pending, "duplicate", res.Duplicate, "remote", remoteIP(r))
	writeJSON(w, http.StatusOK, res)
}

// badRequest answers 400 (413 for a body over the bound) with the
// reason, and logs it.
func (h *Handler) badRequest(w http.ResponseWriter, r *http.Request, what string, err error) {
	status := http.StatusBadRequest
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		status = http.StatusRequestEntityTooLarge
		err = fmt.Errorf("body larger than %d bytes", MaxPurgeBody)
	}
	h.errorLog.Warn("admin: bad "+what+" request: nothing done", "remote", remoteIP(r), "err", err)
	writeJSONError(w, status, what+" request: "+err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // fails only when the client has gone: nobody to tell
}

// writeJSONError answers {"error": msg}.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

// remoteIP is r's client address without the port (one log kind per
// client, whatever its source port).
func remoteIP(r *http.Request) string {
	addr := r.RemoteAddr
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		addr = addr[:i]
	}
	return strings.Trim(addr, "[]")
}

// purgeDisabled answers the purge API when no admin token is configured.
func purgeDisabled(w http.ResponseWriter, _ *http.Request) {
	writeJSONError(w, http.StatusForbidden, errPurgeDisabled)
}

// revalidatePurged answers a request for a soft-purged object: it is
// revalidated now (a conditional request; a 304 ends the purge), and the
// copy is served only when the origin fails within its stale-if-error
// window, or at once when every origin is known down.
func (h *Handler) revalidatePurged(w *want, obj *cache.Object, now time.Time) (*cache.Object, result, error) {
	if w.s.window(w.p, &obj.Meta).usable(now) && w.s.allDown() {
		return obj, resultStale, nil
	}
	return h.fill(w, obj, nil)
}
