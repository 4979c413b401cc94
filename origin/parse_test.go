package origin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// isolateAWSEnv keeps the developer's AWS settings out of a test: no
// shared config files, no region, no instance metadata.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_PROFILE":                 "",
		"AWS_REGION":                  "",
		"AWS_DEFAULT_REGION":          "",
		"AWS_ACCESS_KEY_ID":           "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":       "secret",
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
}

func TestParse(t *testing.T) {
	isolateAWSEnv(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		spec string
		// wantName is String() of the origin; "" means an error is expected.
		wantName string
		// wantErr are substrings the error must contain.
		wantErr []string
		// notInErr must not appear in the error (secrets).
		notInErr string
	}{
		{spec: "s3://bucket", wantName: "s3://bucket"},
		{spec: "s3://bucket/", wantName: "s3://bucket"},
		{spec: "s3://bucket/site", wantName: "s3://bucket/site"},
		{spec: "s3://bucket/site/v1/", wantName: "s3://bucket/site/v1"},
		{spec: "s3://bucket/site?region=eu-west-1", wantName: "s3://bucket/site"},
		{spec: "s3://bucket?endpoint=http://127.0.0.1:9000&path_style=true&region=us-east-1", wantName: "s3://bucket"},
		{spec: "s3://bucket?path_style=false", wantName: "s3://bucket"},
		{spec: "dir:" + dir, wantName: "dir:" + dir},

		{spec: "", wantErr: []string{`origin ""`, "unknown scheme"}},
		{spec: "bucket/prefix", wantErr: []string{`origin "bucket/prefix"`, "unknown scheme", "s3://BUCKET[/PREFIX], http(s)://HOST[/PREFIX] or dir:PATH"}},
		{spec: "https://app.example.com/assets/", wantName: "https://app.example.com/assets"},
		{spec: "http://127.0.0.1:8081", wantName: "http://127.0.0.1:8081"},
		{spec: "https://user:secret@app.example.com/", wantErr: []string{"credentials in the URL"}, notInErr: "secret"},
		{spec: "https://app.example.com/?verify=no", wantErr: []string{"unknown parameters verify"}},
		{spec: "http://app.example.com/?ca_file=/etc/ca.pem", wantErr: []string{"ca_file= is for an https:// origin"}},
		{spec: "https://app.example.com/?ca_file=/does/not/exist", wantErr: []string{"ca_file", "/does/not/exist"}},
		{spec: "https://app.example.com/?header_timeout=soon", wantErr: []string{"header_timeout"}},
		{spec: "https:///x", wantErr: []string{"missing host"}},
		{spec: "S3://bucket", wantErr: []string{"unknown scheme"}},
		{spec: "file:" + dir, wantErr: []string{"unknown scheme"}},
		{spec: "s3://", wantErr: []string{`origin "s3://"`, "missing bucket"}},
		{spec: "s3:///prefix", wantErr: []string{"missing bucket"}},
		{spec: "s3://bucket:9000/x", wantErr: []string{"invalid bucket"}},
		{spec: "s3://My_Bucket/x", wantErr: []string{`invalid bucket name "My_Bucket"`, "lower-case letters"}},
		{spec: "s3://ab", wantErr: []string{"invalid bucket", "3 to 63"}},
		{spec: "s3://-bucket", wantErr: []string{"invalid bucket", "start and end"}},
		{spec: "s3://a..b", wantErr: []string{"invalid bucket", "two dots"}},
		{spec: "s3://192.168.1.1", wantErr: []string{"invalid bucket", "IP address"}},
		{spec: "s3://login-assets.eu/x", wantName: "s3://login-assets.eu/x"},
		{spec: "s3://bucket/a/../b", wantErr: []string{"invalid prefix"}},
		{spec: "s3://bucket/a//b", wantErr: []string{"invalid prefix"}},
		{spec: "s3://bucket?regoin=eu-west-1", wantErr: []string{"unknown parameters regoin"}},
		{spec: "s3://bucket?b=1&a=2&region=x", wantErr: []string{"unknown parameters a, b"}},
		{spec: "s3://bucket?region=a&region=b", wantErr: []string{"region given 2 times"}},
		{spec: "s3://bucket?path_style=maybe", wantErr: []string{"path_style"}},
		{spec: "s3://bucket?endpoint=ftp://host", wantErr: []string{"endpoint"}},
		{spec: "s3://bucket?endpoint=localhost:9000", wantErr: []string{"endpoint"}},
		{spec: "s3://bucket?endpoint=http://", wantErr: []string{"endpoint"}},
		{spec: "s3://bucket?region=x;y", wantErr: []string{"query"}},
		{spec: "s3://bucket#frag", wantErr: []string{"fragment"}},
		{spec: "s3://AKID:topsecret@bucket/x", wantErr: []string{"credentials in the URL"}, notInErr: "topsecret"},
		{spec: "s3://AKID:top%zzsecret@bucket/x", wantErr: []string{"origin"}, notInErr: "secret"},
		{spec: "dir:", wantErr: []string{`origin "dir:"`, "empty path"}},
		{spec: "dir:" + filepath.Join(dir, "missing"), wantErr: []string{"dir:" + filepath.Join(dir, "missing")}},
		{spec: "dir:" + file, wantErr: []string{"not a directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			o, err := Parse(context.Background(), tc.spec)
			if tc.wantName != "" {
				if err != nil {
					t.Fatalf("Parse(%q): %v", tc.spec, err)
				}
				if got := o.String(); got != tc.wantName {
					t.Errorf("String() = %q, want %q", got, tc.wantName)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tc.spec, o)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if tc.notInErr != "" && strings.Contains(err.Error(), tc.notInErr) {
				t.Errorf("error %q reveals %q", err, tc.notInErr)
			}
		})
	}
}

// TestNewS3Options checks how the URL and the environment end up in the
// client's options.
func TestNewS3Options(t *testing.T) {
	tests := []struct {
		name          string
		spec          string
		envRegion     string
		wantRegion    string
		wantEndpoint  string
		wantPathStyle bool
	}{
		{name: "default region", spec: "s3://bkt", wantRegion: "us-east-1"},
		{name: "region from the environment", spec: "s3://bkt", envRegion: "eu-central-1", wantRegion: "eu-central-1"},
		{name: "region parameter wins", spec: "s3://bkt?region=ap-south-1", envRegion: "eu-central-1", wantRegion: "ap-south-1"},
		{name: "endpoint and path style", spec: "s3://bkt?endpoint=https://s3.example.net&path_style=true", wantRegion: "us-east-1", wantEndpoint: "https://s3.example.net", wantPathStyle: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			isolateAWSEnv(t)
			t.Setenv("AWS_REGION", tc.envRegion)
			o := newTestS3(t, tc.spec)
			opts := o.client.Options()
			if opts.Region != tc.wantRegion {
				t.Errorf("Region = %q, want %q", opts.Region, tc.wantRegion)
			}
			if got := aws.ToString(opts.BaseEndpoint); got != tc.wantEndpoint {
				t.Errorf("BaseEndpoint = %q, want %q", got, tc.wantEndpoint)
			}
			if opts.UsePathStyle != tc.wantPathStyle {
				t.Errorf("UsePathStyle = %v, want %v", opts.UsePathStyle, tc.wantPathStyle)
			}
			if opts.RetryMaxAttempts != s3MaxAttempts {
				t.Errorf("RetryMaxAttempts = %d, want %d", opts.RetryMaxAttempts, s3MaxAttempts)
			}
			if opts.ResponseChecksumValidation != aws.ResponseChecksumValidationWhenRequired {
				t.Errorf("ResponseChecksumValidation = %v, want WhenRequired", opts.ResponseChecksumValidation)
			}
		})
	}
}

// TestNewS3Transport checks the transport settings, also with AWS_CA_BUNDLE
// set: the SDK then rebuilds the HTTP client to add the CA, and our
// settings must survive that.
func TestNewS3Transport(t *testing.T) {
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bundle, selfSignedPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, caBundle := range []string{"", bundle} {
		t.Run("AWS_CA_BUNDLE="+caBundle, func(t *testing.T) {
			isolateAWSEnv(t)
			t.Setenv("AWS_CA_BUNDLE", caBundle)
			o := newTestS3(t, "s3://bkt")
			bc, ok := o.client.Options().HTTPClient.(*awshttp.BuildableClient)
			if !ok {
				t.Fatalf("HTTPClient is %T, want *awshttp.BuildableClient", o.client.Options().HTTPClient)
			}
			tr := bc.GetTransport()
			if !tr.DisableCompression {
				t.Error("DisableCompression is false: net/http could decode gzip objects")
			}
			if tr.ResponseHeaderTimeout != s3ResponseHeaderTimeout {
				t.Errorf("ResponseHeaderTimeout = %v, want %v", tr.ResponseHeaderTimeout, s3ResponseHeaderTimeout)
			}
			if tr.MaxIdleConnsPerHost != s3MaxIdleConnsPerHost {
				t.Errorf("MaxIdleConnsPerHost = %d, want %d", tr.MaxIdleConnsPerHost, s3MaxIdleConnsPerHost)
			}
			if d := bc.GetDialer(); d.Timeout != s3DialTimeout {
				t.Errorf("dial timeout = %v, want %v", d.Timeout, s3DialTimeout)
			}
			hasCA := tr.TLSClientConfig != nil && tr.TLSClientConfig.RootCAs != nil
			if hasCA != (caBundle != "") {
				t.Errorf("custom RootCAs set: %v, want %v", hasCA, caBundle != "")
			}
		})
	}
}

// selfSignedPEM returns a throwaway CA certificate in PEM.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "edge test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
