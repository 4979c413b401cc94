package negotiate

import "testing"

func TestAccepts(t *testing.T) {
	tests := []struct {
		header []string
		token  string
		want   bool
	}{
		{nil, "", true},
		{nil, "identity", true},
		{nil, "gzip", false}, // no header: identity only (see Choose)
		{nil, "deflate", false},
		{[]string{""}, "gzip", false},
		{[]string{"gzip"}, "gzip", true},
		{[]string{"gzip"}, "GZIP", true},
		{[]string{"x-gzip"}, "gzip", true},
		{[]string{"gzip"}, "x-gzip", true},
		{[]string{"gzip;q=0"}, "gzip", false},
		{[]string{"gzip"}, "br", false},
		{[]string{"gzip"}, "", true},
		{[]string{"gzip, identity;q=0"}, "", false},
		{[]string{"*;q=0"}, "", false},
		{[]string{"*;q=0, identity"}, "identity", true},
		{[]string{"deflate"}, "deflate", true},
		{[]string{" Deflate ;q=0.5"}, "deflate", true},
		{[]string{"deflate;q=0"}, "deflate", false},
		{[]string{"*"}, "deflate", true},
		{[]string{"*, deflate;q=0"}, "deflate", false},
		{[]string{"*;q=0, deflate"}, "deflate", true},
		{[]string{"gzip", "deflate"}, "deflate", true}, // several lines are one list
		{[]string{"deflate;q=2"}, "deflate", false},    // malformed weight: ignored
		{[]string{"gzip, br"}, "compress", false},
		{[]string{"deflate, deflate;q=0"}, "deflate", false}, // the lower weight wins
		{[]string{`gzip;x="a,deflate"`}, "deflate", false},   // quoted commas do not split
	}
	for _, tt := range tests {
		if got := Accepts(tt.header, tt.token); got != tt.want {
			t.Errorf("Accepts(%q, %q) = %v, want %v", tt.header, tt.token, got, tt.want)
		}
	}
}

func TestAcceptsDoesNotAllocate(t *testing.T) {
	header := []string{"gzip, deflate;q=0.5, br;q=0.9, *;q=0"}
	if n := testing.AllocsPerRun(100, func() { Accepts(header, "deflate") }); n != 0 {
		t.Errorf("Accepts allocates %v times", n)
	}
}
