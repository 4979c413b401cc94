package edge

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CORS lets pages on other origins read a site's responses: the widget
// runs on a customer's own domain and fetches its tenant config from the
// CDN's (the Fetch standard's CORS protocol). The edge answers preflights
// itself and adds the headers to every response at serve time; nothing is
// stored per requesting origin.
type CORS struct {
	// AllowOrigins are the origins ("https://login.customer.com") whose
	// pages may read the responses, or ["*"] for any page. With a list,
	// the matching origin is echoed and every response carries
	// Vary: Origin, so browser caches keep them apart.
	AllowOrigins []string `yaml:"allow_origins"`
	// AllowMethods answer a preflight's Access-Control-Request-Method.
	// Empty means GET and HEAD.
	AllowMethods []string `yaml:"allow_methods"`
	// AllowHeaders are the request headers a page may send beyond the
	// CORS-safelisted ones (X-Widget-Version).
	AllowHeaders []string `yaml:"allow_headers"`
	// ExposeHeaders are response headers a page's script may read beyond
	// the safelisted ones (ETag, Age).
	ExposeHeaders []string `yaml:"expose_headers"`
	// MaxAge is how long a browser may cache a preflight's answer
	// (Access-Control-Max-Age). Unset sends none (browsers then keep it 5
	// seconds); 0 sends 0 (do not cache).
	MaxAge *Duration `yaml:"max_age"`
}

// hopByHop are the connection's own headers (RFC 9110 §7.6.1), and
// edgeOwned the ones the edge computes for each response: neither may be
// set or removed by configuration.
var (
	hopByHop  = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
	edgeOwned = []string{"Content-Length", "Content-Encoding", "Content-Range", "Etag", "Cache-Status", "Age", "Date", "Accept-Ranges"}
)

// checkHeaderName says what is wrong with a configured response header
// name, or "". removing is true for remove_headers, where Vary cannot be
// taken off (the edge's variants depend on it) and may not be added to.
func checkHeaderName(name string, removing bool) string {
	if name == "" || strings.IndexFunc(name, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
		return fmt.Sprintf("%q is not a header name", name)
	}
	canon := http.CanonicalHeaderKey(name)
	switch {
	case slices.Contains(hopByHop, canon):
		return fmt.Sprintf("%s is a hop-by-hop header: it belongs to the connection, not the response", canon)
	case slices.Contains(edgeOwned, canon):
		return fmt.Sprintf("%s is set by the edge for each response", canon)
	case canon == "Vary" && removing:
		return "Vary cannot be removed: the edge's variants depend on it (headers: may add to it)"
	case strings.HasPrefix(canon, "Access-Control-"):
		return fmt.Sprintf("%s is a CORS header: use cors:", canon)
	}
	return ""
}

// isTokenChar reports whether r may appear in an HTTP token (RFC 9110
// §5.6.2).
func isTokenChar(r rune) bool {
	return r < 0x7f && r > 0x20 && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
}

// checkCORS says what is wrong with a cors: block, naming the field.
func checkCORS(c *CORS) (field, msg string) {
	if len(c.AllowOrigins) == 0 {
		return "allow_origins", "empty: list the origins whose pages may read the responses, or [\"*\"]"
	}
	for i, o := range c.AllowOrigins {
		if o == "*" {
			if len(c.AllowOrigins) > 1 {
				return fmt.Sprintf("allow_origins[%d]", i), `"*" allows every origin: give it alone`
			}
			continue
		}
		if m := checkOrigin(o); m != "" {
			return fmt.Sprintf("allow_origins[%d]", i), m
		}
	}
	for i, m := range c.AllowMethods {
		if m == "" || strings.IndexFunc(m, func(r rune) bool { return !isTokenChar(r) }) >= 0 || strings.ToUpper(m) != m {
			return fmt.Sprintf("allow_methods[%d]", i), fmt.Sprintf("%q is not a method (upper case, as GET)", m)
		}
	}
	for i, h := range c.AllowHeaders {
		if h == "" || strings.IndexFunc(h, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
			return fmt.Sprintf("allow_headers[%d]", i), fmt.Sprintf("%q is not a header name", h)
		}
	}
	for i, h := range c.ExposeHeaders {
		if h == "" || strings.IndexFunc(h, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
			return fmt.Sprintf("expose_headers[%d]", i), fmt.Sprintf("%q is not a header name", h)
		}
	}
	return "", ""
}

// checkOrigin says what is wrong with an origin as a browser sends it
// (scheme://host[:port], no path), or "".
func checkOrigin(o string) string {
	u, err := url.Parse(o)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return fmt.Sprintf("%q is not an origin (want https://host[:port])", o)
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Sprintf("%q has more than scheme, host and port: browsers send the origin alone", o)
	case o != strings.ToLower(o):
		return fmt.Sprintf("%q: write origins in lower case, as browsers send them", o)
	}
	return ""
}

// policy is what the edge adds to, and takes off, the responses for a
// set of paths: CORS, and the configured response headers. It is built
// once per site and rule, so a response only copies ready values.
type policy struct {
	cors   *corsPolicy
	set    []setHeader
	remove []string // canonical names
}

type setHeader struct {
	name   string   // canonical
	values []string // one value, shared by every response
}

type corsPolicy struct {
	anyOrigin bool
	origins   map[string]bool
	methods   []string // Access-Control-Allow-Methods
	methodSet map[string]bool
	headers   []string        // Access-Control-Allow-Headers, or nil
	headerSet map[string]bool // lower case
	expose    []string        // Access-Control-Expose-Headers, or nil
	maxAge    []string        // Access-Control-Max-Age, or nil
}

var (
	headerStar    = []string{"*"}
	varyOrigin    = []string{"Origin"}
	varyAEOrigin  = []string{"Accept-Encoding, Origin"}
	varyPreflight = []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
)

// newPolicy builds the policy of a rule (nil for the site's own) over the
// site's: a rule's cors replaces the site's, its headers are set after
// the site's, its remove_headers add to the site's.
func newPolicy(site *Site, rule *Rule) *policy {
	c := site.CORS
	headers := [](map[string]string){site.Headers}
	remove := slices.Clone(site.RemoveHeaders)
	if rule != nil {
		if rule.CORS != nil {
			c = rule.CORS
		}
		headers = append(headers, rule.Headers)
		remove = append(remove, rule.RemoveHeaders...)
	}
	p := &policy{}
	if c != nil {
		p.cors = newCORSPolicy(c)
	}
	byName := map[string]string{}
	for _, hs := range headers {
		for name, v := range hs {
			byName[http.CanonicalHeaderKey(name)] = v
		}
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		p.set = append(p.set, setHeader{name: name, values: []string{byName[name]}})
	}
	for _, name := range remove {
		if canon := http.CanonicalHeaderKey(name); !slices.Contains(p.remove, canon) {
			p.remove = append(p.remove, canon)
		}
	}
	return p
}

func newCORSPolicy(c *CORS) *corsPolicy {
	cp := &corsPolicy{origins: map[string]bool{}, methodSet: map[string]bool{}, headerSet: map[string]bool{}}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			cp.anyOrigin = true
		}
		cp.origins[o] = true
	}
	methods := c.AllowMethods
	if len(methods) == 0 {
		methods = []string{http.MethodGet, http.MethodHead}
	}
	for _, m := range methods {
		cp.methodSet[m] = true
	}
	cp.methods = []string{strings.Join(methods, ", ")}
	if len(c.AllowHeaders) > 0 {
		cp.headers = []string{strings.Join(c.AllowHeaders, ", ")}
		for _, h := range c.AllowHeaders {
			cp.headerSet[strings.ToLower(h)] = true
		}
	}
	if len(c.ExposeHeaders) > 0 {
		cp.expose = []string{strings.Join(c.ExposeHeaders, ", ")}
	}
	if c.MaxAge != nil {
		cp.maxAge = []string{strconv.FormatInt(int64(time.Duration(*c.MaxAge)/time.Second), 10)}
	}
	return cp
}

// apply adds the policy's headers to a response to r whose other headers
// are set: CORS, then the configured ones. It never allocates for a
// request without an Origin header.
func (p *policy) apply(hdr http.Header, r *http.Request) {
	if c := p.cors; c != nil {
		if c.anyOrigin {
			hdr["Access-Control-Allow-Origin"] = headerStar
		} else {
			addVaryOrigin(hdr)
			if o := r.Header["Origin"]; len(o) == 1 && c.origins[o[0]] {
				hdr["Access-Control-Allow-Origin"] = o
			}
		}
		if c.expose != nil {
			hdr["Access-Control-Expose-Headers"] = c.expose
		}
	}
	for _, name := range p.remove {
		delete(hdr, name)
	}
	for _, h := range p.set {
		if h.name == "Vary" {
			hdr["Vary"] = append(slices.Clip(hdr["Vary"]), h.values...) // adds, never replaces
			continue
		}
		hdr[h.name] = h.values
	}
}

// addVaryOrigin adds Origin to the response's Vary.
func addVaryOrigin(hdr http.Header) {
	switch v := hdr["Vary"]; {
	case v == nil:
		hdr["Vary"] = varyOrigin
	case len(v) == 1 && v[0] == varyAcceptEncoding[0]:
		hdr["Vary"] = varyAEOrigin
	default:
		hdr["Vary"] = append(slices.Clip(v), "Origin")
	}
}

// preflight answers a CORS preflight (OPTIONS with
// Access-Control-Request-Method): 204 with the permissions when the
// origin, the method and every requested header are allowed, else 403
// saying which is not, so a developer sees why in the browser's network
// panel.
func (p *policy) preflight(w http.ResponseWriter, r *http.Request) {
	c := p.cors
	hdr := w.Header()
	hdr["Vary"] = varyPreflight
	hdr["Cache-Control"] = []string{"no-store"}
	origin := r.Header.Get("Origin")
	method := r.Header.Get("Access-Control-Request-Method")
	refuse := func(why string) {
		http.Error(w, "CORS preflight refused: "+why, http.StatusForbidden)
	}
	switch {
	case !c.anyOrigin && !c.origins[origin]:
		refuse(fmt.Sprintf("origin %q is not in allow_origins", origin))
		return
	case !c.methodSet[method]:
		refuse(fmt.Sprintf("method %q is not in allow_methods (%s)", method, c.methods[0]))
		return
	}
	for _, line := range r.Header.Values("Access-Control-Request-Headers") {
		for _, h := range strings.Split(line, ",") {
			if h = strings.ToLower(strings.TrimSpace(h)); h != "" && !c.headerSet[h] {
				refuse(fmt.Sprintf("request header %q is not in allow_headers", h))
				return
			}
		}
	}
	if c.anyOrigin {
		hdr["Access-Control-Allow-Origin"] = headerStar
	} else {
		hdr["Access-Control-Allow-Origin"] = []string{origin}
	}
	hdr["Access-Control-Allow-Methods"] = c.methods
	if c.headers != nil {
		hdr["Access-Control-Allow-Headers"] = c.headers
	}
	if c.maxAge != nil {
		hdr["Access-Control-Max-Age"] = c.maxAge
	}
	w.WriteHeader(http.StatusNoContent)
}

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" && r.Header.Get("Origin") != ""
}
