package edge

import (
	"reflect"
	"testing"
	"time"
)

func TestParseCacheControl(t *testing.T) {
	lifetime := func(d directives) any {
		l, ok := d.lifetime()
		if !ok {
			return "none"
		}
		return l
	}
	for _, tc := range []struct {
		in   []string
		want any // the lifetime, or "none"
		more func(directives) bool
	}{
		{[]string{""}, "none", nil},
		{[]string{"max-age=60"}, time.Minute, nil},
		{[]string{"MAX-AGE=60"}, time.Minute, nil},
		{[]string{`max-age="60"`}, time.Minute, nil},
		{[]string{"max-age=003600"}, time.Hour, nil},
		{[]string{"max-age =60"}, "none", nil},           // not max-age
		{[]string{"max-age= 60"}, time.Duration(0), nil}, // max-age, invalid: stale
		{[]string{"max-age='60'"}, time.Duration(0), nil},
		{[]string{"max-age=60.5"}, time.Duration(0), nil},
		{[]string{"max-age=a60"}, time.Duration(0), nil},
		{[]string{"max-age=-1"}, time.Duration(0), nil},
		{[]string{"max-age=1800, max-age=1"}, 30 * time.Minute, nil}, // the first wins
		{[]string{"max-age=1800", "max-age=1"}, 30 * time.Minute, nil},
		{[]string{`extension="max-age=3600", max-age=1`}, time.Second, nil}, // quoted commas do not split
		{[]string{`max-age=1, extension="a, max-age=3600"`}, time.Second, nil},
		{[]string{"s-maxage=10, max-age=60"}, 10 * time.Second, nil},
		{[]string{"max-age=60, s-maxage=10"}, 10 * time.Second, nil},
		{[]string{"public, max-age=99999999999999999999"}, 100 * 365 * 24 * time.Hour, nil},
		{[]string{"no-store"}, "none", func(d directives) bool { return d.noStore }},
		{[]string{"private, max-age=5"}, 5 * time.Second, func(d directives) bool { return d.private && d.privateFields == nil }},
		{[]string{`private="Set-Cookie, x-a"`}, "none", func(d directives) bool {
			return d.private && reflect.DeepEqual(d.privateFields, []string{"Set-Cookie", "X-A"})
		}},
		{[]string{`no-cache="Set-Cookie"`}, "none", func(d directives) bool {
			return d.noCache && reflect.DeepEqual(d.noCacheFields, []string{"Set-Cookie"})
		}},
		{[]string{"must-revalidate, proxy-revalidate, must-understand, no-transform"}, "none", func(d directives) bool {
			return d.mustRevalidate && d.proxyRevalidate && d.mustUnderstand && d.noTransform
		}},
		{[]string{"stale-while-revalidate=30, stale-if-error=0"}, "none", func(d directives) bool {
			return d.hasSWR && d.staleWhileRevalidate == 30*time.Second && d.hasSIE && d.staleIfError == 0
		}},
		{[]string{"max-stale, min-fresh=5, only-if-cached"}, "none", func(d directives) bool {
			return d.anyStale && d.hasMinFresh && d.minFresh == 5*time.Second && d.onlyIfCached
		}},
		{[]string{"max-stale=60"}, "none", func(d directives) bool { return d.hasMaxStale && d.maxStale == time.Minute && !d.anyStale }},
	} {
		d := parseCacheControl(tc.in...)
		if got := lifetime(d); got != tc.want {
			t.Errorf("%q: lifetime %v, want %v", tc.in, got, tc.want)
		}
		if tc.more != nil && !tc.more(d) {
			t.Errorf("%q: %+v", tc.in, d)
		}
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", `no-cache="a, b", private`, `x="\"", max-age=1`, "s-maxage=1,,, public", "max-stale", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := parseCacheControl(v)
		if l, ok := d.lifetime(); ok && l < 0 {
			t.Fatalf("%q: negative lifetime %v", v, l)
		}
		// A value repeated on a second line changes nothing: the first wins.
		if again := parseCacheControl(v, v); !reflect.DeepEqual(again, d) {
			t.Fatalf("%q on two lines parses differently", v)
		}
	})
}
