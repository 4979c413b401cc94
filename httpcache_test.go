package edge

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestStorable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		resp   http.Header
		req    http.Header
		want   bool
	}{
		{"200 plain", 200, hdr(), nil, true},
		{"200 max-age", 200, hdr("Cache-Control", "max-age=60"), nil, true},
		{"no-store", 200, hdr("Cache-Control", "no-store, max-age=60"), nil, false},
		{"no-store must-understand", 200, hdr("Cache-Control", "no-store, must-understand, max-age=60"), nil, true},
		{"private", 200, hdr("Cache-Control", "private, max-age=60"), nil, false},
		{"private with fields", 200, hdr("Cache-Control", `private="X-User", max-age=60`), nil, true},
		{"vary star", 200, hdr("Vary", "Accept, *"), nil, false},
		{"201 without freshness", 201, hdr(), nil, false},
		{"201 with max-age", 201, hdr("Cache-Control", "max-age=60"), nil, true},
		{"404", 404, hdr(), nil, true},
		{"599 unknown, explicitly fresh", 599, hdr("Cache-Control", "max-age=60"), nil, true},
		{"599 unknown, heuristics only", 599, hdr("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"), nil, false},
		{"599 unknown must-understand", 599, hdr("Cache-Control", "max-age=60, must-understand"), nil, false},
		{"no-store must-understand unknown", 599, hdr("Cache-Control", "no-store, must-understand, max-age=60"), nil, false},
		{"599 public", 599, hdr("Cache-Control", "public"), nil, true},
		{"206", 206, hdr("Cache-Control", "max-age=60"), nil, false},
		{"authorization", 200, hdr("Cache-Control", "max-age=60"), hdr("Authorization", "Bearer x"), false},
		{"authorization public", 200, hdr("Cache-Control", "public, max-age=60"), hdr("Authorization", "Bearer x"), true},
		{"authorization s-maxage", 200, hdr("Cache-Control", "s-maxage=60"), hdr("Authorization", "Bearer x"), true},
		{"authorization must-revalidate", 200, hdr("Cache-Control", "must-revalidate, max-age=60"), hdr("Authorization", "Bearer x"), true},
	} {
		if got := storable(tc.status, tc.resp, parseCacheControl(tc.resp.Values("Cache-Control")...), tc.req); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLifetimeAndAge(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	httpDate := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	for _, tc := range []struct {
		name     string
		status   int
		h        http.Header
		want     time.Duration
		explicit bool
		ok       bool
	}{
		{"max-age", 200, hdr("Cache-Control", "max-age=60", "Expires", httpDate(time.Hour)), time.Minute, true, true},
		{"expires minus date", 200, hdr("Expires", httpDate(time.Hour), "Date", httpDate(-time.Minute)), 61 * time.Minute, true, true},
		{"expires in the past", 200, hdr("Expires", httpDate(-time.Hour), "Date", httpDate(0)), 0, true, true},
		{"invalid expires", 200, hdr("Expires", "0"), 0, true, true},
		{"two expires", 200, hdr("Expires", httpDate(time.Hour), "Expires", httpDate(2*time.Hour)), 0, true, true},
		{"heuristic", 200, hdr("Last-Modified", httpDate(-100*time.Minute), "Date", httpDate(0)), 10 * time.Minute, false, true},
		{"heuristic capped", 200, hdr("Last-Modified", httpDate(-100*24*time.Hour)), heuristicMax, false, true},
		{"heuristic not for 201", 201, hdr("Last-Modified", httpDate(-100*time.Minute)), 0, false, false},
		{"nothing", 200, hdr(), 0, false, false},
	} {
		cc := parseCacheControl(tc.h.Values("Cache-Control")...)
		got, explicit, ok := lifetimeOf(tc.status, tc.h, cc, now)
		if got != tc.want || explicit != tc.explicit || ok != tc.ok {
			t.Errorf("%s: %v %v %v, want %v %v %v", tc.name, got, explicit, ok, tc.want, tc.explicit, tc.ok)
		}
	}
	// Age: the larger of the apparent age and Age plus the request's time.
	req, res := now.Add(-2*time.Second), now
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{hdr(), 2 * time.Second},
		{hdr("Age", "30"), 32 * time.Second},
		{hdr("Date", httpDate(-time.Minute)), time.Minute},
		{hdr("Age", "30", "Date", httpDate(-time.Minute)), time.Minute},
		{hdr("Age", "abc"), 2 * time.Second},
		{hdr("Age", "10, 20"), 12 * time.Second},
	} {
		if got := initialAge(tc.h, req, res); got != tc.want {
			t.Errorf("initialAge(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestVaryKeys(t *testing.T) {
	if got := varyFields(hdr("Vary", "accept-language, Accept-Encoding", "Vary", "X-Tenant,accept-language")); !reflect.DeepEqual(got, []string{"Accept-Language", "X-Tenant"}) {
		t.Errorf("varyFields = %q", got)
	}
	fields := []string{"Accept-Language", "X-Tenant"}
	a := secondaryKey(fields, hdr("Accept-Language", "en, fr", "X-Tenant", "acme"))
	b := secondaryKey(fields, hdr("Accept-Language", "en,fr", "X-Tenant", "acme"))
	c := secondaryKey(fields, hdr("Accept-Language", "fr, en", "X-Tenant", "acme"))
	d := secondaryKey(fields, hdr("X-Tenant", "acme"))
	e := secondaryKey(fields, hdr("Accept-Language", "", "X-Tenant", "acme"))
	if a != b || a == c || a == d || d == e {
		t.Errorf("keys: %q %q %q %q %q", a, b, c, d, e)
	}
	if !varyStar(hdr("Vary", "Accept, *")) || varyStar(hdr("Vary", "Accept")) {
		t.Error("varyStar")
	}
}

func TestStoredFieldsAnd304(t *testing.T) {
	h := hdr("Content-Type", "text/plain", "Set-Cookie", "a=b", "X-Custom", "1", "Content-Length", "5", "Keep-Alive", "x", "X-User", "bob", "Cache-Control", "max-age=1")
	stored := storedFields(h, parseCacheControl(`private="X-User"`))
	if want := hdr("Content-Type", "text/plain", "X-Custom", "1", "Cache-Control", "max-age=1"); !reflect.DeepEqual(stored, want) {
		t.Errorf("storedFields = %v, want %v", stored, want)
	}
	up := update304(stored, hdr("Cache-Control", "max-age=3600", "X-New", "2", "Content-Length", "99"))
	if want := hdr("Content-Type", "text/plain", "X-Custom", "1", "Cache-Control", "max-age=3600", "X-New", "2"); !reflect.DeepEqual(up, want) {
		t.Errorf("update304 = %v, want %v", up, want)
	}
}

func TestForwardHeader(t *testing.T) {
	r := httptest.NewRequest("GET", "/a?b", nil)
	r.RemoteAddr = "203.0.113.9:5555"
	r.Header = hdr("Authorization", "Bearer t", "Cookie", "s=1", "If-None-Match", `"x"`, "Range", "bytes=0-1",
		"Connection", "X-Hop", "X-Hop", "1", "X-Forwarded-For", "198.51.100.1", "Accept-Encoding", "br", "Cache-Control", "no-cache")
	h := forwardHeader(r)
	want := hdr("Authorization", "Bearer t", "Cookie", "s=1", "X-Forwarded-For", "198.51.100.1, 203.0.113.9",
		"X-Forwarded-Proto", "http", "Via", "1.1 edge", "Cache-Control", "no-cache")
	if !reflect.DeepEqual(h, want) {
		t.Errorf("forwardHeader = %v\nwant %v", h, want)
	}
}

// FuzzVary checks the Vary parser and the selection key: the fields come
// out canonical, sorted, once each, never Accept-Encoding (the edge
// negotiates that itself) nor empty; and requests that differ only in the
// spacing of their list values share a selection key.
func FuzzVary(f *testing.F) {
	for _, s := range []string{"Accept-Language", "accept-language, Origin,ORIGIN", "*", ",,", "Accept-Encoding, X-A", " \t"} {
		f.Add(s, "en, fr")
	}
	f.Fuzz(func(t *testing.T, vary, value string) {
		fields := varyFields(http.Header{"Vary": {vary}})
		if !slices.IsSorted(fields) || len(slices.Compact(slices.Clone(fields))) != len(fields) {
			t.Fatalf("Vary %q: fields %q not sorted and unique", vary, fields)
		}
		for _, f := range fields {
			if f == "" || f == "Accept-Encoding" || f != http.CanonicalHeaderKey(f) {
				t.Fatalf("Vary %q: field %q", vary, f)
			}
		}
		spaced := strings.ReplaceAll(value, ",", " , ")
		a := secondaryKey(fields, http.Header{"X-A": {value}, "Accept-Language": {value}})
		b := secondaryKey(fields, http.Header{"X-A": {spaced}, "Accept-Language": {spaced}})
		if a != b && !strings.ContainsAny(value, "\x00\x01") {
			t.Fatalf("Vary %q: %q and %q select differently", vary, value, spaced)
		}
	})
}

// FuzzAge checks the Age parser: a value is never negative, and only
// delta-seconds parse.
func FuzzAge(f *testing.F) {
	for _, s := range []string{"60", "-1", "1.5", "99999999999999999999", "60, 70", " 5 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		age, ok := ageOf(http.Header{"Age": {v}})
		if age < 0 {
			t.Fatalf("Age %q: %v", v, age)
		}
		first, _, _ := strings.Cut(v, ",")
		if first = strings.TrimSpace(first); ok && strings.Trim(first, "0123456789") != "" {
			t.Fatalf("Age %q parsed as %v", v, age)
		}
	})
}

// FuzzSurrogateControl checks the fields addressed to the edge: a
// no-store in Surrogate-Control always holds, and CDN-Cache-Control is
// followed only when it is a valid Structured Field.
func FuzzSurrogateControl(f *testing.F) {
	for _, s := range []string{"max-age=60", "no-store", `max-age="60"`, "max-age=60, &&&", "content=\"ESI/1.0\", max-age=1"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, sc, cdn string) {
		h := http.Header{"Surrogate-Control": {sc}, "Cache-Control": {"max-age=5"}}
		d := edgeDirectives(h, parseCacheControl(h.Values("Cache-Control")...))
		if parseCacheControl(sc).noStore && !d.noStore {
			t.Fatalf("Surrogate-Control %q: no-store lost", sc)
		}
		if l, ok := d.lifetime(); ok && l < 0 {
			t.Fatalf("Surrogate-Control %q: lifetime %v", sc, l)
		}
		h.Set("Cdn-Cache-Control", cdn)
		d = edgeDirectives(h, parseCacheControl(h.Values("Cache-Control")...))
		if !validTargeted([]string{cdn}) && !reflect.DeepEqual(d, edgeDirectives(http.Header{"Surrogate-Control": {sc}, "Cache-Control": {"max-age=5"}}, parseCacheControl("max-age=5"))) {
			t.Fatalf("an invalid CDN-Cache-Control %q was followed", cdn)
		}
	})
}
