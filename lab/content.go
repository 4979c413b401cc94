package lab

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
)

// object is one file the CDN serves, in every version the lab uploaded,
// so that a browser can tell which version a body is, or that it is
// none of them (a wrong byte).
type object struct {
	path         string // URL path
	contentType  string
	cacheControl string
	tag          string // surrogate key besides the release's

	mu       sync.RWMutex // a release adds versions while browsers check bodies
	versions [][]byte
	sums     map[[32]byte]int // sha256 of a version → its number (from 1)
}

// key is the object's key in the buckets.
func (o *object) key() string { return sitePrefix + o.path }

// version returns the number of the version body is, or 0 for none.
func (o *object) version(body []byte) int {
	sum := sha256.Sum256(body)
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.sums[sum]
}

// add makes body version len(versions)+1 and returns its number.
func (o *object) add(body []byte) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.versions = append(o.versions, body)
	o.sums[sha256.Sum256(body)] = len(o.versions)
	return len(o.versions)
}

// get returns version v (from 1).
func (o *object) get(v int) []byte {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.versions[v-1]
}

// tags are the object's surrogate keys in version v.
func (o *object) tags(v int) string { return fmt.Sprintf("%s release-%d", o.tag, v) }

const (
	widgetPath = "/widget/login.js"
	widgetSize = 174827 // the size of the auth0-js 9.32.0 build the benchmarks use
)

// tenants are the tenants whose configs browsers fetch (browser i: tenant
// i mod len).
var tenants = []string{"acme", "globex", "initech", "umbrella"}

// newObjects returns the widget and the tenant configs, in version 1.
//
// The widget is the login script: long-lived at the browser and the edge
// (an hour), changed by releases, which purge it. The tenant configs
// are short-lived (10 s), so the edges revalidate them often, which is
// what shows S3's failures.
func newObjects() []*object {
	objs := []*object{{path: widgetPath, contentType: "application/javascript", cacheControl: "public, max-age=3600", tag: "widget", sums: map[[32]byte]int{}}}
	for _, t := range tenants {
		objs = append(objs, &object{path: "/tenants/" + t + ".json", contentType: "application/json", cacheControl: "public, max-age=10", tag: "tenants", sums: map[[32]byte]int{}})
	}
	for _, o := range objs {
		o.add(body(o, 1))
	}
	return objs
}

// body is object o's content in version v: deterministic, different in
// every version, and shaped like the real thing (minified JavaScript,
// compressible as such; a small JSON document).
func body(o *object, v int) []byte {
	if o.path == widgetPath {
		rng := rand.New(rand.NewPCG(uint64(v), 42))
		words := []string{"function", "return", "var", "this", "null", "auth0", "login", "token", "callback", "options", "redirectUri", "responseType", "window", "document", "prototype", "&&", "||", "===", "!==", "{", "}", "(", ")", ";", ","}
		var b strings.Builder
		fmt.Fprintf(&b, "/*! edge-lab login widget, release %d */\n", v)
		for b.Len() < widgetSize {
			w := words[rng.IntN(len(words))]
			b.WriteString(w)
			if rng.IntN(4) == 0 {
				fmt.Fprintf(&b, "%c%d", 'a'+rng.IntN(26), rng.IntN(1000))
			}
		}
		return []byte(b.String()[:widgetSize])
	}
	name := strings.TrimSuffix(strings.TrimPrefix(o.path, "/tenants/"), ".json")
	var b strings.Builder
	fmt.Fprintf(&b, `{"tenant":%q,"release":%d,"domain":"login.%s.test","clientID":"%x","connections":[`, name, v, name, sha256.Sum256([]byte(name)))
	for i := range 12 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name":"connection-%d","strategy":"oauth2","enabled":%v}`, i, (i+v)%3 != 0)
	}
	b.WriteString("]}\n")
	return []byte(b.String())
}
