package s3client

import "testing"

func TestCheckBucketName(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pathStyle bool
		ok        bool
	}{
		{"login-assets", false, true},
		{"cdn.example.com", false, true},
		{"My_Bucket", false, false},
		{"My_Bucket", true, true}, // a legacy us-east-1 name, reachable path-style
		{"ab", true, false},
		{"a..b", false, false},
		{"192.168.1.1", false, false},
		{"bad/name", true, false},
		{"-start", false, false},
	} {
		if msg := checkBucketName(tc.name, tc.pathStyle); (msg == "") != tc.ok {
			t.Errorf("checkBucketName(%q, path style %v) = %q, want ok=%v", tc.name, tc.pathStyle, msg, tc.ok)
		}
	}
}
