package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestUsage: bad flags exit 2 with a message naming the flag, before
// anything is built; -h exits 0 with the flags. (The lab itself runs in
// package lab's TestShortForm.)
func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, 0, "-scenario"},
		{[]string{"-regions", "mars-1,us-west-2"}, 2, `-regions: unknown region "mars-1"`},
		{[]string{"-regions", "1"}, 2, "-regions 1: 2 to 3"},
		{[]string{"-regions", "us-west-2,us-west-2"}, 2, `"us-west-2" listed twice`},
		{[]string{"-scenario", "meteor"}, 2, `-scenario: unknown scenario "meteor"`},
		{[]string{"-duration", "1s"}, 2, "-duration 1s: at least 2s"},
		{[]string{"-edges", "3"}, 2, "edges per region 3: 1 or 2"},
		{[]string{"-clients", "0"}, 2, "-clients 0: at least 1"},
		{[]string{"-edges", "0"}, 2, "-edges 0: 1 or 2"},
		{[]string{"-duration", "0s"}, 2, "-duration 0s: at least 2s"},
		{[]string{"-mode", "vm"}, 2, `-mode "vm"`},
		{[]string{"-duration", "soon"}, 2, "invalid value"},
		{[]string{"extra"}, 2, "unexpected arguments: extra"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("%v: stdout %q, want nothing", tc.args, stdout.String())
		}
	}
}
