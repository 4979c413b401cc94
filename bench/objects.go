package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// The objects every server is asked for, by URL path. The origin holds
// them under the same key without the leading slash.
const (
	pathWidget  = "/widget/auth0-9.32.0.min.js" // the login widget, stored plain
	pathConfig  = "/tenants/acme.json"          // a 1 KiB tenant config
	pathGzipped = "/widget/stored-gzip.min.js"  // the widget stored gzip-encoded (Content-Encoding: gzip)
	pathMissing = "/tenants/missing.json"       // not in the bucket: 404

	// widgetAsset is the real widget, relative to the module root.
	widgetAsset = "../shared/assets/auth0-9.32.0.min.js"
	// widgetSize is the real widget's size, for the generated stand-in.
	widgetSize = 174827
	configSize = 1024
)

// corpus is the origin's fixed content.
type corpus struct {
	widget       []byte
	widgetSource string // where the widget came from
	config       []byte
	gzipped      []byte // the widget, gzip-encoded as stored at the origin
}

// loadCorpus reads the widget from the shared assets when present and
// generates the rest.
func loadCorpus(root string) (*corpus, error) {
	c := &corpus{}
	p := filepath.Join(root, widgetAsset)
	if b, err := os.ReadFile(p); err == nil {
		c.widget, c.widgetSource = b, filepath.Clean(p)
	} else {
		c.widget, c.widgetSource = generatedJS(widgetSize), fmt.Sprintf("generated (%s not found)", widgetAsset)
	}
	c.config = tenantConfig(configSize)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(c.widget); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	c.gzipped = buf.Bytes()
	return c, nil
}

// objects are the origin's fixed objects, keyed without the leading slash.
func (c *corpus) objects() map[string]*object {
	const cc = "public, max-age=3600"
	return map[string]*object{
		key(pathWidget):  newObject(c.widget, "application/javascript", "", cc),
		key(pathConfig):  newObject(c.config, "application/json", "", cc),
		key(pathGzipped): newObject(c.gzipped, "application/javascript", "gzip", cc),
	}
}

// identity returns the plain bytes a client should get for path after
// decoding, or nil when path is not a fixed object.
func (c *corpus) identity(path string) []byte {
	switch {
	case path == pathWidget, path == pathGzipped, strings.HasPrefix(path, "/"+coldPrefix) && strings.HasSuffix(path, ".js"):
		return c.widget
	case path == pathConfig, strings.HasPrefix(path, "/"+coldPrefix) && strings.HasSuffix(path, ".json"):
		return c.config
	}
	return nil
}

func key(path string) string { return strings.TrimPrefix(path, "/") }

// tenantConfig is a plausible tenant configuration, padded to size bytes.
func tenantConfig(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"tenant":"acme","region":"eu","clientID":"aW3kq9ZpL0xR7vT2bN5mC8dF1gH4jK6s","callbackURL":"https://login.acme.example/callback",` +
		`"authorizationServer":{"url":"https://acme.eu.auth.example","issuer":"https://acme.eu.auth.example/"},` +
		`"strategies":[{"name":"auth0","connections":[{"name":"Username-Password-Authentication","showSignup":true,"showForgot":true,"requires_username":false,` +
		`"passwordPolicy":"good"}]},{"name":"google-oauth2","connections":[{"name":"google-oauth2","scope":["email","profile"]}]},` +
		`{"name":"samlp","connections":[{"name":"acme-okta","domain":"acme.example","domain_aliases":["acme.co","acme.io"]}]}],` +
		`"theme":{"logo":"https://cdn.acme.example/logo.svg","primaryColor":"#0a66c2","pageBackground":"#f4f4f4"},` +
		`"languageDictionary":{"title":"Acme","signUpTerms":"By signing up you agree to our terms of service and privacy policy."},"pad":"`)
	for b.Len() < size-2 {
		b.WriteByte('x')
	}
	b.WriteString(`"}`)
	return b.Bytes()[:size]
}

// generatedJS is minified-looking JavaScript of n bytes that compresses
// about as well as a real bundle.
func generatedJS(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"function", "return", "var", "this", "prototype", "null", "undefined", "typeof", "object",
		"length", "call", "apply", "options", "callback", "error", "token", "request", "response", "state", "nonce"}
	var b bytes.Buffer
	b.WriteString("/*! generated stand-in for auth0-js */\n!function(e,t){")
	for b.Len() < n {
		switch r.IntN(6) {
		case 0:
			fmt.Fprintf(&b, "var %c%d=%s.%s(%c,%d);", 'a'+rune(r.IntN(26)), r.IntN(100), words[r.IntN(len(words))], words[r.IntN(len(words))], 'a'+rune(r.IntN(26)), r.IntN(1000))
		case 1:
			fmt.Fprintf(&b, "function %c%c(%c,%c){return %s(%c)}", 'a'+rune(r.IntN(26)), 'A'+rune(r.IntN(26)), 'e', 't', words[r.IntN(len(words))], 'e')
		case 2:
			fmt.Fprintf(&b, "if(\"%s\"==typeof %c)throw new Error(\"%s %s\");", words[r.IntN(len(words))], 'a'+rune(r.IntN(26)), words[r.IntN(len(words))], words[r.IntN(len(words))])
		default:
			fmt.Fprintf(&b, "%c.%s=%s;", 'a'+rune(r.IntN(26)), words[r.IntN(len(words))], words[r.IntN(len(words))])
		}
	}
	return b.Bytes()[:n]
}
