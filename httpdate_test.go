package edge

import (
	"net/http"
	"testing"
	"time"
)

func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, time.November, 6, 8, 49, 37, 0, time.UTC)
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT",  // IMF-fixdate
		"Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850
		"Sun Nov  6 08:49:37 1994",       // asctime
		"SUN, 06 NOV 1994 08:49:37 gmt",  // names in another case
		"Mon, 06 Nov 1994 08:49:37 GMT",  // a wrong weekday: still the date
	} {
		got, ok := parseHTTPDate(s)
		if !ok || !got.Equal(want) {
			t.Errorf("parseHTTPDate(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	if got, ok := parseHTTPDate("Thu Aug  8 02:01:18 2050"); !ok || !got.Equal(time.Date(2050, 8, 8, 2, 1, 18, 0, time.UTC)) {
		t.Errorf("asctime with a two-digit day: %v, %v", got, ok)
	}
	if got, ok := parseHTTPDate("Wed, 31 Dec 2008 23:59:60 GMT"); !ok || !got.Equal(time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("leap second: %v, %v", got, ok)
	}
	for _, s := range []string{
		"",
		"0",
		"Thu, 18 Aug 2050 02:01:18 UTC",   // another zone
		"Thu, 18 Aug 2050 02:01:18 AEST",  //
		"Thu, 18 Aug 50 02:01:18 GMT",     // two-digit year in an IMF-fixdate
		"Thu 18 Aug 2050 02:01:18 GMT",    // no comma
		"Thu, 18  Aug  2050 02:01:18 GMT", // doubled spaces
		"Thu, 18-Aug-2050 02:01:18 GMT",   // dashes
		"Thu, 18 Aug 2050 02.01.18 GMT",   // periods
		"Thu, 18 Aug 2050 2:01:18 GMT",    // one-digit hour
		"Thu, 18 Aug 2050 24:01:18 GMT",   // no such hour
		"Fri, 31 Nov 2050 02:01:18 GMT",   // no such day
		"Xyz, 18 Aug 2050 02:01:18 GMT",   // no such weekday
		"Thu, 18 Foo 2050 02:01:18 GMT",   // no such month
		"Thu, 18 Aug 2050 02:01:18 GMT ",  // trailing space
		"Thursday, 18-Aug-2050 02:01:18 GMT",
		"Thu Aug 8 02:01:18 2050", // asctime with one space before a one-digit day
	} {
		if got, ok := parseHTTPDate(s); ok {
			t.Errorf("parseHTTPDate(%q) = %v, want invalid", s, got)
		}
	}
}

// FuzzParseHTTPDate checks that every date the parser accepts is one
// http.TimeFormat can write and it reads back the same, and that a date
// written in IMF-fixdate is always read.
func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Thu, 18 Aug 2050 2:01:18 GMT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseHTTPDate(s)
		if !ok {
			return
		}
		if got.Location() != time.UTC || got.Nanosecond() != 0 {
			t.Fatalf("parseHTTPDate(%q) = %v: not whole seconds in UTC", s, got)
		}
		again, ok := parseHTTPDate(got.Format(http.TimeFormat))
		if !ok || !again.Equal(got) {
			t.Fatalf("parseHTTPDate(%q) = %v, which does not read back from %q: %v, %v", s, got, got.Format(http.TimeFormat), again, ok)
		}
	})
}
