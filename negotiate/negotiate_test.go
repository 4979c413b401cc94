package negotiate

import (
	"strings"
	"testing"
)

func TestChoose(t *testing.T) {
	noBr := SetOf(Identity, Gzip, Zstd)
	tests := []struct {
		name    string
		header  []string
		offered Set
		want    Coding
	}{
		{"absent (nil)", nil, All, Identity},
		{"absent (no lines)", []string{}, All, Identity},
		{"present but empty", []string{""}, All, Identity},
		{"only whitespace", []string{" \t "}, All, Identity},
		{"gzip", []string{"gzip"}, All, Gzip},
		{"upper case token", []string{"GZIP"}, All, Gzip},
		{"mixed case br", []string{"Br"}, All, Brotli},
		{"OWS and weights", []string{" gzip ; q=0.5 , br;q=0.9"}, All, Brotli},
		{"tabs as OWS", []string{"\tgzip\t;\tq=0.5\t"}, All, Gzip},
		{"star takes the preferred coding", []string{"*"}, All, Brotli},
		{"star q=0 refuses all, fall back", []string{"*;q=0"}, All, Identity},
		{"identity q=0 alone", []string{"identity;q=0"}, All, Identity},
		{"identity and star refused, RFC fallback", []string{"identity;q=0, *;q=0"}, All, Identity},
		{"gzip refused", []string{"gzip;q=0"}, All, Identity},
		{"x-gzip alias", []string{"x-gzip"}, All, Gzip},
		{"X-GZIP alias upper case", []string{"X-GZIP"}, All, Gzip},
		{"tie goes to br", []string{"gzip, br, zstd"}, All, Brotli},
		{"tie with 1.0 vs 1", []string{"br;q=1.0, gzip;q=1"}, All, Brotli},
		{"tie zstd over gzip", []string{"gzip, zstd"}, All, Zstd},
		{"three-way tie at 0.5", []string{"zstd;q=0.5, br;q=0.5, gzip;q=0.5"}, All, Brotli},
		{"q=1.001 invalid, member ignored", []string{"br;q=1.001, gzip;q=0.5"}, All, Gzip},
		{"q=0. is zero", []string{"br;q=0., gzip;q=0.1"}, All, Gzip},
		{"q=1. is one", []string{"gzip;q=0.5, br;q=1."}, All, Brotli},
		{"q=abc ignored", []string{"gzip;q=abc"}, All, Identity},
		{"q=abc ignored, others stand", []string{"gzip;q=abc, br;q=0.1"}, All, Brotli},
		{"q=-1 ignored", []string{"gzip;q=-1"}, All, Identity},
		{"q=.5 ignored", []string{"gzip;q=.5"}, All, Identity},
		{"four decimals ignored", []string{"gzip;q=0.1234"}, All, Identity},
		{"q without value ignored", []string{"gzip;q"}, All, Identity},
		{"q given twice ignored", []string{"gzip;q=0.5;q=1"}, All, Identity},
		{"Q upper case is q", []string{"br;Q=0, gzip;q=0.2"}, All, Gzip},
		{"extension parameter ignored", []string{"gzip;level=9"}, All, Gzip},
		{"empty parameter skipped", []string{"gzip;;q=0.3, br;q=0.2"}, All, Gzip},
		{"higher q beats preference", []string{"br;q=0.999, gzip"}, All, Gzip},
		{"br not offered", []string{"br, gzip;q=0.8"}, noBr, Gzip},
		{"nothing offered acceptable", []string{"br, zstd"}, SetOf(Identity, Gzip), Identity},
		{"fallback even when identity not offered", []string{"br"}, SetOf(Gzip), Identity},
		{"empty offered set", []string{"gzip, br"}, 0, Identity},
		{"garbage separators", []string{";;;,,,"}, All, Identity},
		{"empty members around a token", []string{",,, gzip ,,,"}, All, Gzip},
		{"unknown codings only", []string{"deflate, compress, sdch"}, All, Identity},
		{"star weight beats explicit", []string{"gzip;q=0.8, *;q=0.9"}, All, Brotli},
		{"star except br", []string{"*;q=0.5, br;q=0"}, All, Zstd},
		{"explicit identity preferred", []string{"identity, gzip;q=0.5"}, All, Identity},
		{"default identity ranks below any weight", []string{"gzip;q=0.001"}, All, Gzip},
		{"star covers identity", []string{"*, gzip;q=0"}, SetOf(Identity, Gzip), Identity},
		{"star refused, explicit gzip", []string{"*;q=0, gzip"}, All, Gzip},
		{"star refused, explicit identity wins", []string{"*;q=0, identity;q=0.5, gzip;q=0.4"}, All, Identity},
		{"star tie gzip over identity", []string{"*;q=0.1"}, SetOf(Identity, Gzip), Gzip},
		{"duplicate keeps lowest weight", []string{"gzip;q=0.5, gzip;q=0"}, All, Identity},
		{"duplicate keeps lowest weight, reversed", []string{"gzip, gzip;q=0.2, zstd;q=0.3"}, All, Zstd},
		{"multiple lines", []string{"gzip;q=0.5", "br;q=0.8"}, All, Brotli},
		{"refusal on another line", []string{"br;q=0", "gzip"}, All, Gzip},
		{"empty line among lines", []string{"", "zstd"}, All, Zstd},
		{"quoted comma is not a separator", []string{`gzip;x=", br;q=1, "`}, All, Gzip},
		{"escaped quote stays inside the string", []string{`gzip;x="a\", br;q=1, \"", zstd;q=0.1`}, All, Gzip},
		{"unterminated quote swallows the rest", []string{`gzip;x="a, br`}, All, Gzip},
		{"very long header", []string{strings.Repeat("foo;q=0.5, ", 1000) + "zstd"}, All, Zstd},
		{"very long garbage", []string{strings.Repeat(";=,\"\\", 2000)}, All, Identity},
		{"chrome", []string{"gzip, deflate, br, zstd"}, All, Brotli},
		{"chrome without br offered", []string{"gzip, deflate, br, zstd"}, noBr, Zstd},
		{"firefox old", []string{"gzip, deflate"}, All, Gzip},
		{"token with inner space is unknown", []string{"g zip, br;q=0.1"}, All, Brotli},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Choose(tt.header, tt.offered); got != tt.want {
				t.Errorf("Choose(%q, %v) = %v, want %v", tt.header, tt.offered, got, tt.want)
			}
		})
	}
}

func TestChooseAllocs(t *testing.T) {
	headers := [][]string{
		{"gzip, deflate, br, zstd"},
		{" gzip ; q=0.5 , br;q=0.9, *;q=0"},
		{"identity;q=0, *;q=0"},
		{"gzip;q=0.5", "br;q=0.8", `x;y="a,b"`},
		{strings.Repeat("foo;q=0.5, ", 100) + "zstd"},
		nil,
	}
	for _, h := range headers {
		if n := testing.AllocsPerRun(100, func() { Choose(h, All) }); n != 0 {
			t.Errorf("Choose(%q) allocates %v times per run, want 0", h, n)
		}
	}
}

func TestParseQ(t *testing.T) {
	tests := []struct {
		in   string
		want int16
		ok   bool
	}{
		{"0", 0, true},
		{"0.", 0, true},
		{"0.5", 500, true},
		{"0.05", 50, true},
		{"0.005", 5, true},
		{"0.999", 999, true},
		{"1", 1000, true},
		{"1.", 1000, true},
		{"1.000", 1000, true},
		{"1.001", 0, false},
		{"1.0000", 0, false},
		{"0.1234", 0, false},
		{"2", 0, false},
		{"", 0, false},
		{".5", 0, false},
		{"0,5", 0, false},
		{"0.5a", 0, false},
		{"-0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseQ(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("parseQ(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseContentEncoding(t *testing.T) {
	tests := []struct {
		in   string
		want Coding
		ok   bool
	}{
		{"", Identity, true},
		{"identity", Identity, true},
		{"IDENTITY", Identity, true},
		{" gzip ", Gzip, true},
		{"GZip", Gzip, true},
		{"x-gzip", Gzip, true},
		{"br", Brotli, true},
		{"zstd", Zstd, true},
		{"compress", Identity, false},
		{"deflate", Identity, false},
		{"gzip, br", Identity, false},
		{"gzip,", Identity, false},
		{"aws-chunked", Identity, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseContentEncoding(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseContentEncoding(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCodingNames(t *testing.T) {
	tests := []struct {
		c            Coding
		str, token   string
		roundTripsOK bool
	}{
		{Identity, "identity", "", true},
		{Gzip, "gzip", "gzip", true},
		{Zstd, "zstd", "zstd", true},
		{Brotli, "br", "br", true},
		{Coding(9), "Coding(9)", "Coding(9)", false},
	}
	for _, tt := range tests {
		t.Run(tt.str, func(t *testing.T) {
			if got := tt.c.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if got := tt.c.Token(); got != tt.token {
				t.Errorf("Token() = %q, want %q", got, tt.token)
			}
			if !tt.roundTripsOK {
				return
			}
			if c, ok := ParseContentEncoding(tt.c.Token()); !ok || c != tt.c {
				t.Errorf("ParseContentEncoding(Token()) = %v, %v; want %v, true", c, ok, tt.c)
			}
		})
	}
}

func TestSet(t *testing.T) {
	s := SetOf(Gzip, Brotli, Coding(7))
	for c, want := range map[Coding]bool{Identity: false, Gzip: true, Zstd: false, Brotli: true, Coding(7): false} {
		if got := s.Has(c); got != want {
			t.Errorf("SetOf(gzip, br).Has(%v) = %v, want %v", c, got, want)
		}
	}
	if got := s.String(); got != "{gzip br}" {
		t.Errorf("String() = %q", got)
	}
	if All != SetOf(Identity, Gzip, Zstd, Brotli) {
		t.Errorf("All = %v, want all four codings", All)
	}
	for c := Identity; c < NumCodings; c++ {
		if !All.Has(c) {
			t.Errorf("All lacks %v", c)
		}
	}
	if Set(0).Has(Identity) {
		t.Error("empty set has identity")
	}
}

var benchHeaders = []struct {
	name   string
	header []string
}{
	{"chrome", []string{"gzip, deflate, br, zstd"}},
	{"weights", []string{" gzip ; q=0.5 , br;q=0.9, *;q=0"}},
	{"curl", nil},
	{"two-lines", []string{"gzip;q=0.5", "br;q=0.8, zstd;q=0.7"}},
}

func BenchmarkChoose(b *testing.B) {
	for _, h := range benchHeaders {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Choose(h.header, All)
			}
		})
	}
}
