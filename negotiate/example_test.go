package negotiate_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/edgecdn/edge/negotiate"
)

func ExampleChoose() {
	offered := negotiate.All
	for _, header := range [][]string{
		nil,                         // curl: no Accept-Encoding
		{"gzip, deflate, br, zstd"}, // a current browser
		{"gzip;q=1.0, br;q=0.5"},    // gzip preferred
		{"x-gzip"},                  // an alias
		{"identity;q=0, *;q=0"},     // nothing acceptable: send it as is
	} {
		fmt.Printf("%q → %v\n", header, negotiate.Choose(header, offered))
	}
	// An object that is not worth compressing is offered only as stored.
	fmt.Println(negotiate.Choose([]string{"br, gzip"}, negotiate.SetOf(negotiate.Identity)))
	// Output:
	// [] → identity
	// ["gzip, deflate, br, zstd"] → br
	// ["gzip;q=1.0, br;q=0.5"] → gzip
	// ["x-gzip"] → gzip
	// ["identity;q=0, *;q=0"] → identity
	// identity
}

func ExampleTranscode() {
	widget := strings.Repeat("function(e){return e&&e.__esModule?e:{default:e}};", 100)

	var gz, br bytes.Buffer
	if err := negotiate.Transcode(&gz, strings.NewReader(widget), negotiate.Identity, negotiate.Gzip); err != nil {
		fmt.Println(err)
		return
	}
	// The origin stored gzip; a browser wants br.
	if err := negotiate.Transcode(&br, &gz, negotiate.Gzip, negotiate.Brotli); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(widget), br.Len() < len(widget)/10)
	fmt.Println(negotiate.VariantETag(`"5d41402a"`, negotiate.Gzip, negotiate.Brotli))

	// Truncated input is an error, never a short body.
	err := negotiate.Transcode(&bytes.Buffer{}, bytes.NewReader(gz.Bytes()[:10]), negotiate.Gzip, negotiate.Identity)
	fmt.Println(err != nil)
	// Output:
	// 5000 true
	// "5d41402a-br"
	// true
}
