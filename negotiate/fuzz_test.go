package negotiate

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
)

func FuzzChoose(f *testing.F) {
	seeds := []string{
		"", "gzip", "GZIP", " gzip ; q=0.5 , br;q=0.9", "*", "*;q=0", "identity;q=0",
		"identity;q=0, *;q=0", "gzip;q=0", "x-gzip", "gzip, br, zstd", "br;q=1.0, gzip;q=1",
		"br;q=1.001", "gzip;q=0.", ";;;,,,", "gzip;q=abc", `gzip;x="a,\"b"`, "gzip;q=0.5;q=1",
		"\tzstd\t;\tQ=0.3", "*;q=0.1, identity;q=0", "br;q=0.999, gzip;q=0.998, zstd;q=1.000",
	}
	for i, s := range seeds {
		f.Add(s, seeds[(i+1)%len(seeds)], uint8(i), uint8(i%3))
	}
	f.Fuzz(func(t *testing.T, line1, line2 string, offered, lines uint8) {
		var header []string
		switch lines % 3 {
		case 1:
			header = []string{line1}
		case 2:
			header = []string{line1, line2}
		}
		set := Set(offered)
		got := Choose(header, set)
		if got != Identity && !set.Has(got) {
			t.Fatalf("Choose(%q, %v) = %v, not offered", header, set, got)
		}
		if again := Choose(header, set); again != got {
			t.Fatalf("Choose(%q, %v) not deterministic: %v then %v", header, set, got, again)
		}
		// Accepts agrees with Choose on every coding the edge can make.
		for _, c := range []Coding{Gzip, Zstd, Brotli} {
			if acc, chosen := Accepts(header, c.String()), Choose(header, SetOf(c)) == c; acc != chosen {
				t.Fatalf("Accepts(%q, %v) = %v, but Choose offered only %v picks it: %v", header, c, acc, c, chosen)
			}
		}
		if Accepts(header, "x-gzip") != Accepts(header, "gzip") {
			t.Fatalf("Accepts(%q): x-gzip and gzip differ", header)
		}
		if strings.Contains(line1+line2, `"`) {
			return // the reference below does not know quoted strings
		}
		if want := chooseReference(header, set); got != want {
			t.Fatalf("Choose(%q, %v) = %v, reference says %v", header, set, got, want)
		}
	})
}

var refQ = regexp.MustCompile(`^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$`)

// chooseReference is a slow, obviously-written Choose for inputs without
// quoted strings, to check the hand-written parser against.
func chooseReference(header []string, offered Set) Coding {
	if len(header) == 0 {
		return Identity
	}
	names := map[string]string{"identity": "identity", "gzip": "gzip", "x-gzip": "gzip", "zstd": "zstd", "br": "br", "*": "*"}
	weights := map[string]float64{}
	for _, member := range strings.Split(strings.Join(header, ","), ",") {
		parts := strings.Split(member, ";")
		name, known := names[strings.ToLower(strings.Trim(parts[0], " \t"))]
		if !known {
			continue
		}
		q, qs, bad := 1.0, 0, false
		for _, p := range parts[1:] {
			k, v, hasEq := strings.Cut(p, "=")
			if strings.ToLower(strings.Trim(k, " \t")) != "q" {
				continue
			}
			qs++
			v = strings.Trim(v, " \t")
			if !hasEq || !refQ.MatchString(v) {
				bad = true
				break
			}
			q = parseRefQ(v)
		}
		if bad || qs > 1 {
			continue
		}
		if old, ok := weights[name]; !ok || q < old {
			weights[name] = q
		}
	}
	best, bestScore := Identity, 0.0
	for _, c := range []Coding{Identity, Gzip, Zstd, Brotli} {
		if !offered.Has(c) {
			continue
		}
		w, ok := weights[c.String()]
		if !ok {
			w, ok = weights["*"]
		}
		score := 0.0
		switch {
		case ok && w > 0:
			score = w + 1
		case !ok && c == Identity:
			score = 0.5
		}
		if score > 0 && score >= bestScore {
			best, bestScore = c, score
		}
	}
	return best
}

func parseRefQ(v string) float64 {
	var thousandths int
	for i, ch := range v {
		switch {
		case i == 0:
			thousandths = int(ch-'0') * 1000
		case i >= 2:
			thousandths += int(ch-'0') * []int{100, 10, 1}[i-2]
		}
	}
	return float64(thousandths) / 1000
}

func FuzzTranscode(f *testing.F) {
	text := []byte("hello hello hello hello, edge; hello hello")
	for _, c := range codings {
		var b bytes.Buffer
		if err := Transcode(&b, bytes.NewReader(text), Identity, c); err != nil {
			f.Fatal(err)
		}
		enc := b.Bytes()
		f.Add(enc, uint8(c), uint8(Identity))
		f.Add(enc, uint8(c), uint8(Brotli))
		if len(enc) > 4 {
			f.Add(enc[:len(enc)-3], uint8(c), uint8(Gzip))
		}
	}
	f.Add([]byte{}, uint8(Gzip), uint8(Identity))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, uint8(Gzip), uint8(Zstd))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd}, uint8(Zstd), uint8(Identity))
	f.Add([]byte("garbage"), uint8(Brotli), uint8(Identity))
	f.Fuzz(func(t *testing.T, data []byte, from, to uint8) {
		fc, tc := Coding(from%NumCodings), Coding(to%NumCodings)
		// Garbage in a coding either decodes or fails; it never panics.
		_ = Transcode(io.Discard, bytes.NewReader(data), fc, tc)

		// Any bytes survive a round trip through any coding.
		var enc, back bytes.Buffer
		if err := Transcode(&enc, bytes.NewReader(data), Identity, tc); err != nil {
			t.Fatalf("encoding %v: %v", tc, err)
		}
		if err := Transcode(&back, &enc, tc, Identity); err != nil {
			t.Fatalf("decoding %v: %v", tc, err)
		}
		if !bytes.Equal(back.Bytes(), data) {
			t.Fatalf("round trip through %v changed %d bytes into %d", tc, len(data), back.Len())
		}
	})
}
