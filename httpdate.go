package edge

import (
	"slices"
	"strings"
	"time"
)

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) in any of its three
// forms: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the obsolete
// RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov
// 6 08:49:37 1994"). It follows the grammar to the character, because a
// date that does not (a one-digit hour, doubled spaces, another zone than
// GMT) is invalid, and an invalid Expires means already expired (RFC 9111
// §5.3), where time.Parse would read a date into it. Names are matched
// without regard to case, as caches commonly do: "THU" is still Thursday.
func parseHTTPDate(s string) (time.Time, bool) {
	day, rest, ok := strings.Cut(s, " ")
	if !ok {
		return time.Time{}, false
	}
	if name, comma := strings.CutSuffix(day, ","); comma {
		if len(name) == 3 {
			return parseIMFFixdate(name, rest)
		}
		return parseRFC850(name, rest)
	}
	return parseASCTime(day, rest)
}

// parseIMFFixdate parses "06 Nov 1994 08:49:37 GMT", the part of an
// IMF-fixdate after "Sun, ".
func parseIMFFixdate(day, s string) (time.Time, bool) {
	if len(s) != len("06 Nov 1994 08:49:37 GMT") || s[2] != ' ' || s[6] != ' ' || s[11] != ' ' || s[20] != ' ' || !strings.EqualFold(s[21:], "GMT") {
		return time.Time{}, false
	}
	mday, ok1 := number(s[0:2])
	month, ok2 := monthOf(s[3:6])
	year, ok3 := number(s[7:11])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	return dateOf3(day, shortDays, year, month, mday, s[12:20])
}

// parseRFC850 parses "06-Nov-94 08:49:37 GMT", the part of an RFC 850
// date after "Sunday, ". A two-digit year more than 50 years ahead is in
// the past century (RFC 9110 §5.6.7).
func parseRFC850(day, s string) (time.Time, bool) {
	if len(s) != len("06-Nov-94 08:49:37 GMT") || s[2] != '-' || s[6] != '-' || s[9] != ' ' || s[18] != ' ' || !strings.EqualFold(s[19:], "GMT") {
		return time.Time{}, false
	}
	mday, ok1 := number(s[0:2])
	month, ok2 := monthOf(s[3:6])
	yy, ok3 := number(s[7:9])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	now := time.Now().UTC().Year()
	year := now - now%100 + yy
	if year > now+50 {
		year -= 100
	}
	return dateOf3(day, longDays, year, month, mday, s[10:18])
}

// parseASCTime parses "Nov  6 08:49:37 1994", the part of an asctime date
// after "Sun ".
func parseASCTime(day, s string) (time.Time, bool) {
	if len(s) != len("Nov  6 08:49:37 1994") || s[3] != ' ' || s[6] != ' ' || s[15] != ' ' {
		return time.Time{}, false
	}
	month, ok1 := monthOf(s[0:3])
	var mday int
	var ok2 bool
	if s[4] == ' ' {
		mday, ok2 = number(s[5:6])
	} else {
		mday, ok2 = number(s[4:6])
	}
	year, ok3 := number(s[16:20])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	return dateOf3(day, shortDays, year, month, mday, s[7:15])
}

var (
	shortDays = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	longDays  = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	months    = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// dateOf3 assembles a date from its parts, checking the time of day
// ("08:49:37"), that the day exists in its month, and that day is a day
// name (from names). That the name is the date's weekday is not checked:
// a sender that got it wrong still meant the date.
func dateOf3(day string, names []string, year int, month time.Month, mday int, clock string) (time.Time, bool) {
	if len(clock) != 8 || clock[2] != ':' || clock[5] != ':' || !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, day) }) {
		return time.Time{}, false
	}
	hour, ok1 := number(clock[0:2])
	minute, ok2 := number(clock[3:5])
	sec, ok3 := number(clock[6:8])
	// 60 seconds: a leap second, which the grammar allows.
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 60 || mday < 1 {
		return time.Time{}, false
	}
	t := time.Date(year, month, mday, hour, minute, min(sec, 59), 0, time.UTC)
	if t.Day() != mday {
		return time.Time{}, false // 31 Nov
	}
	if sec == 60 {
		t = t.Add(time.Second)
	}
	return t, true
}

// monthOf reads a three-letter month name.
func monthOf(s string) (time.Month, bool) {
	for i, m := range months {
		if strings.EqualFold(s, m) {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

// number reads s, which must be all ASCII digits (at most 4 here).
func number(s string) (int, bool) {
	n, ok := digits(s)
	return int(n), ok
}
