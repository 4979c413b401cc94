package edge

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgecdn/edge/origin"
)

// Site is one site the Handler serves.
type Site struct {
	// Hosts the site answers (Host header without port, any case). Empty
	// means the default site, which answers any other host.
	Hosts []string
	// Origin holds the site's objects.
	Origin origin.Origin
	// CacheNamespace names the site's objects in the cache (see
	// cacheKey). cmd/edge sets it to the name of the site's first origin
	// ("s3://bucket/prefix", "dir:/srv/assets"). Empty means
	// Origin.String().
	CacheNamespace string
	// Index is the object served for paths ending in "/". Empty means
	// DefaultIndex.
	Index string
	// TTL, NegativeTTL, StaleWhileRevalidate, StaleIfError: see
	// SiteConfig. Zero means zero: no freshness, no negative caching, no
	// stale serving (cmd/edge fills them from the flags, whose defaults
	// are DefaultTTL and the others).
	TTL, NegativeTTL, StaleWhileRevalidate, StaleIfError time.Duration
	// MustServe: see SiteConfig.
	MustServe []string
	// Query says whether the query string is part of the object: kept
	// (in the cache key, and forwarded to the origin) or ignored. Empty
	// means kept for an HTTP origin, ignored for S3 and directories
	// (objects there have no query semantics, and cache-busting query
	// strings would only fragment the cache).
	Query QueryMode
	// CORS, Headers, RemoveHeaders: see SiteConfig.
	CORS          *CORS
	Headers       map[string]string
	RemoveHeaders []string
	// Rules apply per path; the first matching prefix wins.
	Rules []Rule
}

// QueryMode is what a site does with a request's query string.
type QueryMode string

// The query modes of a site.
const (
	QueryDefault QueryMode = ""       // QueryKeep for an HTTP origin, else QueryIgnore
	QueryKeep    QueryMode = "keep"   // part of the cache key, forwarded to the origin
	QueryIgnore  QueryMode = "ignore" // neither: /a.js?v=2 is /a.js
)

// site is a Site ready to serve.
type site struct {
	Site
	allDown   func() bool // every origin of the site is known down (circuits open)
	policies  []*policy   // for each rule
	policy0   *policy     // for paths no rule matches
	keepQuery bool
	// speaksHTTP: the origin answers with HTTP semantics (any status,
	// header fields to store and give back, other methods passed through).
	speaksHTTP bool
	pass       http.Handler // the reverse proxy for uncached methods; nil for S3 and directories
}

// downReporter is an Origin that knows when all of its origins are down
// (origin.Failover).
type downReporter interface{ AllDown() bool }

func newSite(s Site) (*site, error) {
	if s.Origin == nil {
		return nil, errors.New("no origin")
	}
	st := &site{Site: s, allDown: func() bool { return false }}
	if d, ok := s.Origin.(downReporter); ok {
		st.allDown = d.AllDown
	}
	if st.CacheNamespace == "" {
		st.CacheNamespace = s.Origin.String()
	}
	if st.Index == "" {
		st.Index = DefaultIndex
	}
	if p, ok := s.Origin.(proxier); ok && p.Proxies() {
		st.speaksHTTP = true
	}
	switch s.Query {
	case QueryDefault:
		st.keepQuery = st.speaksHTTP
	case QueryKeep:
		st.keepQuery = true
	case QueryIgnore:
	default:
		return nil, fmt.Errorf("query %q: keep or ignore", s.Query)
	}
	st.policy0 = newPolicy(&st.Site, nil)
	for i := range st.Rules {
		st.policies = append(st.policies, newPolicy(&st.Site, &st.Rules[i]))
	}
	return st, nil
}

// cacheKey is the one place cache keys are made: the site's cache
// namespace followed by the object's path, "s3://login-assets/prod" +
// "/widget/v1/login.js". The namespace comes from the site's
// configuration (its first origin's name), never from the origin at run
// time, so wrapping an origin or adding replicas behind it keeps every
// key, while pointing a site at another primary bucket starts a new
// cache. Keys are stored on disk: changing this function empties every
// edge's cache at once, so it never changes without a migration.
func cacheKey(namespace, p string) string { return namespace + p }

// key is the cache key of the object at path p of s.
func (s *site) key(p string) string { return cacheKey(s.CacheNamespace, p) }

// objectPath cleans a request path into the path of the object it names
// in s (a directory's is its index), or reports false for a path the edge
// refuses.
func (s *site) objectPath(path string) (string, bool) {
	p, ok := cleanPath(path)
	if !ok {
		return "", false
	}
	if p[len(p)-1] == '/' {
		p += s.Index
	}
	return p, true
}

// requestPath is objectPath with the query, when s keeps it in the key.
func (s *site) requestPath(u *url.URL) (string, bool) {
	p, ok := s.objectPath(u.Path)
	if ok && s.keepQuery && u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p, ok
}

// rule returns the first rule matching p, or nil.
func (s *site) rule(p string) *Rule {
	if i := s.ruleIndex(p); i >= 0 {
		return &s.Rules[i]
	}
	return nil
}

// policy returns the response policy for path p.
func (s *site) policy(p string) *policy {
	if i := s.ruleIndex(p); i >= 0 {
		return s.policies[i]
	}
	return s.policy0
}

func (s *site) ruleIndex(p string) int {
	for i := range s.Rules {
		if strings.HasPrefix(p, s.Rules[i].Prefix) {
			return i
		}
	}
	return -1
}

// route picks the site for a Host header value.
func (h *Handler) route(host string) *site {
	if len(h.hosts) == 0 {
		return h.def
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	if s, ok := h.hosts[strings.ToLower(host)]; ok {
		return s
	}
	return h.def
}
