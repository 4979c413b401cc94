package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/origin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const testToken = "purge-token-0123456789"

// adminEdge is a testEdge with its admin handler, a token and a log.
type adminEdge struct {
	*testEdge
	admin http.Handler
	logs  *logs
	reg   *prometheus.Registry
}

func newAdminEdge(t testing.TB, sites ...Site) *adminEdge {
	t.Helper()
	te := newTestEdge(t, Site{}, cache.Config{})
	ae := &adminEdge{testEdge: te, logs: &logs{}, reg: prometheus.NewRegistry()}
	if len(sites) == 0 {
		sites = []Site{{}}
	}
	for i := range sites {
		if sites[i].Origin == nil {
			sites[i].Origin = te.org
		}
		sites[i] = withDefaults(sites[i])
	}
	h, err := NewHandler(Options{Cache: te.cache, Sites: sites, Now: te.clock.Now, ErrorLog: slog.New(ae.logs),
		Registry: ae.reg, Name: "edge-1", Region: "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	te.h = h
	ae.admin = h.AdminHandler(testToken)
	return ae
}

// call sends an admin request with the token; body is marshalled unless
// it is a string.
func (ae *adminEdge) call(t testing.TB, method, target string, body any) *httptest.ResponseRecorder {
	t.Helper()
	return callAdmin(ae.admin, method, target, body, "Bearer "+testToken)
}

func callAdmin(h http.Handler, method, target string, body any, auth string) *httptest.ResponseRecorder {
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	r := httptest.NewRequest(method, target, bytes.NewReader(b))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func (ae *adminEdge) purge(t testing.TB, body any) PurgeResult {
	t.Helper()
	w := ae.call(t, "POST", "/purge", body)
	if w.Code != 200 {
		t.Fatalf("purge %v: %d %s", body, w.Code, w.Body)
	}
	var res PurgeResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// cacheStatus returns the Cache-Status of a GET of path.
func (ae *adminEdge) status(t testing.TB, path string, hdr ...string) (int, string, []byte) {
	t.Helper()
	res := ae.get(t, "GET", path, hdr...)
	return res.StatusCode, res.Header.Get("Cache-Status"), decode(t, res)
}

func hit(cs string) bool { return strings.HasPrefix(cs, "edge; hit") }

var (
	softMode = true
	hardMode = false
)

// TestPurgeAuth: with no token configured the purge API is off (403); a
// missing or wrong token, of any length, gets 401, is logged, and purges
// nothing.
func TestPurgeAuth(t *testing.T) {
	ae := newAdminEdge(t)
	ae.org.put("/w.js", memObject{body: text(3000)})
	ae.status(t, "/w.js")
	body := PurgeRequest{URLs: []string{"/w.js"}, Soft: &hardMode}

	open := ae.h.AdminHandler("")
	for _, path := range []string{"/purge", "/warm", "/cache?path=/w.js"} {
		method := "POST"
		if strings.HasPrefix(path, "/cache") {
			method = "GET"
		}
		w := callAdmin(open, method, path, body, "")
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "purge disabled: no admin token configured") {
			t.Errorf("%s without a token configured: %d %q, want 403", path, w.Code, w.Body)
		}
	}
	for _, auth := range []string{
		"",
		"Bearer wrong-token-0123456789",        // same length
		"Bearer " + testToken + "x",            // longer
		"Bearer purge",                         // shorter
		"Basic " + testToken,                   // another scheme
		"bearer " + strings.ToUpper(testToken), // case matters
	} {
		w := callAdmin(ae.admin, "POST", "/purge", body, auth)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, w.Code)
		}
	}
	if n := len(ae.logs.matching("missing or wrong bearer token")); n == 0 {
		t.Error("refused requests were not logged")
	}
	if st := ae.cache.Stats(); st.Purges != 0 {
		t.Fatalf("%d purges recorded by refused requests", st.Purges)
	}
	if _, cs, _ := ae.status(t, "/w.js"); !hit(cs) {
		t.Fatalf("after refused purges: Cache-Status %q, want a hit", cs)
	}
	if w := ae.call(t, "POST", "/purge", body); w.Code != 200 {
		t.Fatalf("with the token: %d %s", w.Code, w.Body)
	}
}

// TestPurgeBadInput: each bad request gets 400 (413 for a body over 1
// MiB) with a message that says what is wrong, and purges nothing.
func TestPurgeBadInput(t *testing.T) {
	ae := newAdminEdge(t)
	ae.org.put("/w.js", memObject{body: text(3000)})
	ae.status(t, "/w.js")
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"unknown field", `{"urls":["/w.js"],"colour":"red"}`, 400, `unknown field "colour"`},
		{"unknown selector", `{"regex":"/w.*"}`, 400, `unknown field "regex"`},
		{"malformed", `{"urls":["/w.js"]`, 400, "malformed JSON"},
		{"not an object", `["/w.js"]`, 400, "JSON object"},
		{"wrong type", `{"urls":"/w.js"}`, 400, `field "urls": want a list of strings`},
		{"two objects", `{"all":true}{"all":true}`, 400, "more than one value"},
		{"trailing garbage", `{"all":true} x`, 400, "malformed JSON"},
		{"empty body", ``, 400, "empty body"},
		{"empty request", `{}`, 400, "empty purge"},
		{"empty lists", `{"urls":[],"tags":[],"soft":false}`, 400, "empty purge"},
		{"prefix without slash", `{"prefixes":["tenants/"]}`, 400, "must start with /"},
		{"url without slash", `{"urls":["w.js"]}`, 400, "must start with /"},
		{"full url", `{"urls":["https://cdn.example.com/w.js"]}`, 400, `give the host in "host"`},
		{"query string", `{"urls":["/w.js?v=2"]}`, 400, "no query string"},
		{"dot segment", `{"urls":["/a/../w.js"]}`, 400, "not a path the edge serves"},
		{"tag with space", `{"tags":["release 42"]}`, 400, "one word"},
		{"empty tag", `{"tags":[""]}`, 400, "empty"},
		{"all and more", `{"all":true,"urls":["/w.js"]}`, 400, "give no other selector"},
		{"bad host", `{"all":true,"host":"https://cdn.example.com"}`, 400, "host name"},
		{"bad id", `{"all":true,"id":"../x"}`, 400, "letters, digits"},
		{"too large", `{"urls":["/` + strings.Repeat("a", MaxPurgeBody) + `"]}`, 413, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := ae.call(t, "POST", "/purge", tc.body)
			var e struct{ Error string }
			json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != tc.status || !strings.Contains(e.Error, tc.want) {
				t.Fatalf("%d %s, want %d with %q", w.Code, w.Body, tc.status, tc.want)
			}
		})
	}
	if st := ae.cache.Stats(); st.Purges != 0 {
		t.Fatalf("%d purges recorded by bad requests", st.Purges)
	}
	if _, cs, _ := ae.status(t, "/w.js"); !hit(cs) {
		t.Fatalf("after bad requests: Cache-Status %q, want a hit", cs)
	}
}

// TestPurgeURLEveryVariant: a URL purge takes the object out in every
// coding; the answer names the edge and counts the object once.
func TestPurgeURLEveryVariant(t *testing.T) {
	ae := newAdminEdge(t)
	v1, v2 := text(5000), text(5100)
	ae.org.put("/widget/v1/login.js", memObject{body: v1})
	for _, enc := range []string{"", "gzip", "br", "zstd"} {
		ae.status(t, "/widget/v1/login.js", "Accept-Encoding", enc)
		ae.cache.Wait()
	}
	ae.org.put("/widget/v1/login.js", memObject{body: v2})
	res := ae.purge(t, PurgeRequest{URLs: []string{"/widget/v1/login.js"}, Soft: &hardMode})
	if res.Name != "edge-1" || res.Region != "eu-west-1" || res.Mode != "hard" || res.Entries != 1 || res.Pending || res.TookMS <= 0 {
		t.Fatalf("answer %+v", res)
	}
	for _, enc := range []string{"br", "zstd", "gzip", ""} {
		code, cs, body := ae.status(t, "/widget/v1/login.js", "Accept-Encoding", enc)
		if code != 200 || !bytes.Equal(body, v2) {
			t.Fatalf("%q after the purge: %d %q, old body %v", enc, code, cs, bytes.Equal(body, v1))
		}
	}
	if n := testutil.ToFloat64(ae.h.purgeMetrics.purges.WithLabelValues("url", "hard")); n != 1 {
		t.Errorf("edge_purges_total{url,hard} = %v", n)
	}
}

// TestPurgeSelectors: prefix, tag and all, limited to one site by host.
func TestPurgeSelectors(t *testing.T) {
	siteA := Site{Hosts: []string{"a.example"}, CacheNamespace: "ns-a"}
	siteB := Site{Hosts: []string{"b.example"}, CacheNamespace: "ns-b"}
	ae := newAdminEdge(t, siteA, siteB)
	tagged := &taggedOrigin{memOrigin: ae.org, tags: map[string][]string{
		"/tenants/acme.json": {"tenants", "release-42"},
		"/tenants/beta.json": {"tenants"},
		"/widget/login.js":   {"widget", "release-42"},
		"/other.js":          nil,
	}}
	ae.h.sites[0].Origin, ae.h.sites[1].Origin = tagged, tagged
	for p := range tagged.tags {
		ae.org.put(p, memObject{body: text(2000)})
	}
	get := func(host, p string) string {
		res := serve(ae.h, "GET", "http://"+host+p)
		if res.StatusCode != 200 {
			t.Fatalf("%s%s: %d", host, p, res.StatusCode)
		}
		return res.Header.Get("Cache-Status")
	}
	warmAll := func() {
		for _, host := range []string{"a.example", "b.example"} {
			for p := range tagged.tags {
				get(host, p)
			}
		}
		ae.cache.Wait()
	}
	check := func(name string, purged map[string]bool) {
		t.Helper()
		for _, host := range []string{"a.example", "b.example"} {
			for p := range tagged.tags {
				cs := get(host, p)
				if want := purged[host+p]; hit(cs) == want {
					t.Errorf("%s: %s%s: Cache-Status %q, purged %v", name, host, p, cs, want)
				}
			}
		}
	}
	warmAll()
	ae.purge(t, PurgeRequest{Prefixes: []string{"/tenants/"}, Host: "a.example"})
	check("prefix on a", map[string]bool{"a.example/tenants/acme.json": true, "a.example/tenants/beta.json": true})

	warmAll()
	res := ae.purge(t, PurgeRequest{Tags: []string{"release-42"}, Soft: &hardMode})
	if res.Entries != 4 {
		t.Errorf("tag purge on both sites: %d entries, want 4", res.Entries)
	}
	check("tag", map[string]bool{"a.example/tenants/acme.json": true, "a.example/widget/login.js": true,
		"b.example/tenants/acme.json": true, "b.example/widget/login.js": true})

	warmAll()
	ae.purge(t, PurgeRequest{All: true, Host: "b.example"})
	purgedB := map[string]bool{}
	for p := range tagged.tags {
		purgedB["b.example"+p] = true
	}
	check("all on b", purgedB)
	if w := ae.call(t, "POST", "/purge", PurgeRequest{All: true, Host: "c.example"}); w.Code != 400 || !strings.Contains(w.Body.String(), "no site serves") {
		t.Errorf("unknown host: %d %s", w.Code, w.Body)
	}
}

// taggedOrigin adds surrogate keys to a memOrigin's objects, as S3's
// x-amz-meta-surrogate-key does.
type taggedOrigin struct {
	*memOrigin
	tags map[string][]string
}

func (o *taggedOrigin) Get(ctx context.Context, key string, cond origin.Conditions) (*origin.Object, error) {
	obj, err := o.memOrigin.Get(ctx, key, cond)
	if err == nil {
		obj.SurrogateKeys = o.tags[key]
	}
	return obj, err
}

// TestSoftVersusHardWithOriginDown: with the origin down, a soft-purged
// object keeps serving (stale-if-error); a hard-purged one gets 502.
func TestSoftVersusHardWithOriginDown(t *testing.T) {
	ae := newAdminEdge(t)
	soft, hard := text(3000), text(3100)
	ae.org.put("/soft.js", memObject{body: soft})
	ae.org.put("/hard.js", memObject{body: hard})
	ae.status(t, "/soft.js")
	ae.status(t, "/hard.js")
	ae.purge(t, PurgeRequest{URLs: []string{"/soft.js"}, Soft: &softMode})
	ae.purge(t, PurgeRequest{URLs: []string{"/hard.js"}, Soft: &hardMode})
	ae.org.down.Store(true)
	code, cs, body := ae.status(t, "/soft.js")
	if code != 200 || !bytes.Equal(body, soft) || !strings.Contains(cs, "stale-if-error") {
		t.Fatalf("soft-purged, origin down: %d %q", code, cs)
	}
	if code, cs, _ := ae.status(t, "/hard.js"); code != http.StatusBadGateway {
		t.Fatalf("hard-purged, origin down: %d %q, want 502", code, cs)
	}
	// The origin is back: the soft-purged copy is revalidated (304), not
	// fetched again, and served as a hit after.
	ae.org.down.Store(false)
	gets := ae.org.gets.Load()
	if code, cs, _ := ae.status(t, "/soft.js"); code != 200 || !strings.Contains(cs, "fwd-status=304") {
		t.Fatalf("soft-purged, origin back: %d %q, want a revalidation", code, cs)
	}
	if _, cs, _ := ae.status(t, "/soft.js"); !hit(cs) || ae.org.gets.Load() != gets+1 {
		t.Fatalf("after the revalidation: %q, %d origin requests", cs, ae.org.gets.Load()-gets)
	}
}

// TestSoftPurgeRevalidatesNextRequest: the next request after a soft
// purge asks the origin (conditionally), and gets the new version.
func TestSoftPurgeRevalidatesNextRequest(t *testing.T) {
	ae := newAdminEdge(t)
	ae.org.put("/t.json", memObject{body: []byte(`{"v":1}`)})
	ae.status(t, "/t.json")
	ae.org.put("/t.json", memObject{body: []byte(`{"v":2}`)})
	if _, cs, body := ae.status(t, "/t.json"); !hit(cs) || string(body) != `{"v":1}` {
		t.Fatalf("before the purge: %q %s", cs, body)
	}
	ae.purge(t, PurgeRequest{URLs: []string{"/t.json"}})
	if _, cs, body := ae.status(t, "/t.json"); string(body) != `{"v":2}` {
		t.Fatalf("after a soft purge: %q %s, want v2", cs, body)
	}
}

// TestWarmAndCacheEndpoints: POST /warm fetches and derives every coding
// (the requests after are hits, nothing derived on them); GET /cache says
// what the edge holds, before and after purges.
func TestWarmAndCacheEndpoints(t *testing.T) {
	ae := newAdminEdge(t)
	ae.org.put("/widget/v2/login.js", memObject{body: text(6000)})
	w := ae.call(t, "POST", "/warm", WarmRequest{URLs: []string{"/widget/v2/login.js", "/missing.js"}})
	var wr WarmResult
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &wr) != nil {
		t.Fatalf("warm: %d %s", w.Code, w.Body)
	}
	if u := wr.URLs[0]; u.Result != "fetched" || u.Status != 200 || strings.Join(u.Variants, ",") != "identity,gzip,zstd,br" {
		t.Fatalf("warm result %+v", u)
	}
	if u := wr.URLs[1]; u.Status != 404 {
		t.Fatalf("warm of a missing object: %+v", u)
	}
	ae.cache.Wait()
	derived := ae.cache.Stats().Derivations
	for _, enc := range []string{"br", "zstd", "gzip", ""} {
		if _, cs, _ := ae.status(t, "/widget/v2/login.js", "Accept-Encoding", enc); !hit(cs) {
			t.Fatalf("%q after warm: %q, want a hit", enc, cs)
		}
	}
	if ae.cache.Stats().Derivations != derived {
		t.Fatal("a request after warm derived a variant")
	}

	inspect := func() CacheEntry {
		t.Helper()
		w := ae.call(t, "GET", "/cache?path=/widget/v2/login.js", nil)
		var e CacheEntry
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &e) != nil {
			t.Fatalf("cache: %d %s", w.Code, w.Body)
		}
		return e
	}
	e := inspect()
	if e.Name != "edge-1" || e.Status != "fresh" || e.OriginStatus != 200 || e.ETag == "" || e.Expires == nil || len(e.Variants) != 4 || e.Purged != "" {
		t.Fatalf("fresh entry: %+v", e)
	}
	ae.purge(t, PurgeRequest{URLs: []string{"/widget/v2/login.js"}})
	if e := inspect(); e.Status != "soft-purged" || e.Purged != "soft" {
		t.Fatalf("soft-purged entry: %+v", e)
	}
	ae.purge(t, PurgeRequest{URLs: []string{"/widget/v2/login.js"}, Soft: &hardMode})
	if e := inspect(); e.Status != "not cached" || e.Purged != "hard" || e.PurgedAt == nil {
		t.Fatalf("hard-purged entry: %+v", e)
	}
	if w := ae.call(t, "GET", "/cache", nil); w.Code != 400 {
		t.Fatalf("cache without path: %d", w.Code)
	}
	if w := ae.call(t, "POST", "/warm", `{"urls":["/a.js"],"soft":true}`); w.Code != 400 {
		t.Fatalf("warm with an unknown field: %d", w.Code)
	}
}

// TestHardPurgeSurvivesRestart: an object hard-purged before a restart
// is never served after it, for any TTL, and is fetched anew.
func TestHardPurgeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *adminEdge {
		ae := newAdminEdgeIn(t, dir)
		return ae
	}
	ae := open()
	v1, v2 := text(4000), text(4100)
	ae.org.put("/w.js", memObject{body: v1, cacheControl: "max-age=31536000"})
	ae.status(t, "/w.js", "Accept-Encoding", "br")
	ae.cache.Wait()
	ae.purge(t, PurgeRequest{Prefixes: []string{"/"}, Soft: &hardMode})
	ae.cache.Close()

	ae = open()
	ae.org.put("/w.js", memObject{body: v2, cacheControl: "max-age=31536000"})
	for _, enc := range []string{"br", ""} {
		code, cs, body := ae.status(t, "/w.js", "Accept-Encoding", enc)
		if code != 200 || !bytes.Equal(body, v2) {
			t.Fatalf("%q after restart: %d %q, old body: %v", enc, code, cs, bytes.Equal(body, v1))
		}
	}
}

func newAdminEdgeIn(t testing.TB, dir string) *adminEdge {
	t.Helper()
	te := newTestEdge(t, Site{}, cache.Config{Dir: dir})
	ae := &adminEdge{testEdge: te, logs: &logs{}}
	ae.admin = te.h.AdminHandler(testToken)
	return ae
}

func TestPurgeMetrics(t *testing.T) {
	ae := newAdminEdge(t)
	ae.org.put("/a.js", memObject{body: text(100)})
	ae.status(t, "/a.js")
	ae.purge(t, PurgeRequest{URLs: []string{"/a.js", "/b.js"}, Tags: []string{"x"}, Soft: &hardMode})
	ae.purge(t, PurgeRequest{All: true})
	w := httptest.NewRecorder()
	ae.admin.ServeHTTP(w, func() *http.Request {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Header.Set("Authorization", "Bearer "+testToken)
		return r
	}())
	for _, want := range []string{
		`edge_purges_total{mode="hard",selector="url"} 2`,
		`edge_purges_total{mode="hard",selector="tag"} 1`,
		`edge_purges_total{mode="soft",selector="all"} 1`,
		`edge_purged_entries_total 1`,
		`edge_purge_rules `,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func FuzzDecodePurgeRequest(f *testing.F) {
	f.Add([]byte(`{"urls": ["/widget/v1/login.js"], "prefixes": ["/tenants/"], "tags": ["release-42"], "all": false, "host": "cdn.example.com", "soft": true, "id": "20261130T120000.000000000Z-abc"}`))
	f.Add([]byte(`{"all":true,"soft":false}`))
	f.Add([]byte(`{"urls":["/a/../b"]}`))
	f.Add([]byte(`{"tags":["a b"]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"urls":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePurgeRequest(bytes.NewReader(data))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// What is accepted is what Purge relies on.
		if len(p.URLs)+len(p.Prefixes)+len(p.Tags) == 0 && !p.All {
			t.Fatal("accepted an empty purge")
		}
		for _, u := range p.URLs {
			if c, ok := cleanPath(u); !ok || c == "" {
				t.Fatalf("accepted url %q", u)
			}
		}
		for _, pf := range p.Prefixes {
			if !strings.HasPrefix(pf, "/") {
				t.Fatalf("accepted prefix %q", pf)
			}
		}
		for _, tag := range p.Tags {
			if tag == "" || strings.ContainsAny(tag, " \t\n") {
				t.Fatalf("accepted tag %q", tag)
			}
		}
		// And it survives a round trip unchanged.
		b, _ := json.Marshal(p)
		again, err := DecodePurgeRequest(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		if again.Mode() != p.Mode() || len(again.URLs) != len(p.URLs) {
			t.Fatal("round trip changed the request")
		}
	})
}

// BenchmarkMemoryHitWithPurges: benchmarkHit's tenant config (gzip),
// with no purges, and with 10,000 prefix and 10,000 tag purges in force
// (recorded through Handler.Purge, none selecting the object). They stay
// in force because a fill that began before them is still waiting on the
// origin (the lurker keeps every rule such a fill may need).
func BenchmarkMemoryHitWithPurges(b *testing.B) {
	for _, n := range []int{0, 10_000} {
		b.Run(fmt.Sprintf("purges=%d", 2*n), func(b *testing.B) {
			ae := newAdminEdge(b)
			ae.org.put("/tenants/a.json", memObject{body: text(1500)})
			gate := make(chan struct{})
			defer close(gate)
			benchmarkHitOn(b, ae.testEdge, "/tenants/a.json", "gzip, deflate, br", 1500, func() {
				if n == 0 {
					return
				}
				ae.org.gate, ae.org.entered = gate, make(chan struct{})
				go ae.get(b, "GET", "/slow.js") // holds the rules in force
				<-ae.org.entered
				for i := range n {
					ae.h.Purge(PurgeRequest{Prefixes: []string{fmt.Sprintf("/other%d/", i)}}, 0)
					ae.h.Purge(PurgeRequest{Tags: []string{fmt.Sprintf("release-%d", i)}}, 0)
				}
				// Let the lurker make its pass: the rules stay.
				if _, err := ae.h.Purge(PurgeRequest{URLs: []string{"/x"}}, time.Minute); err != nil {
					b.Fatal(err)
				}
				if got := ae.cache.Stats().PurgeRules; got < 2*n {
					b.Fatalf("%d purges in force, want %d", got, 2*n)
				}
				ae.org.gets.Add(-1) // the held fill's
			})
		})
	}
}
