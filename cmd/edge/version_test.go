package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMakeStampsVersion checks that `make run` and `make build` give the
// binary its version from git describe, so -version does not say
// (devel), and that a stamped version is what -version prints.
func TestMakeStampsVersion(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	out, err := exec.Command("make", "-n", "-C", "../..", "run", "build").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n: %v\n%s", err, out)
	}
	want := "-X main.version="
	if desc, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		want += strings.TrimSpace(string(desc))
	}
	var lines int
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, " build ") || strings.Contains(line, " run ") {
			lines++
			if !strings.Contains(line, want) {
				t.Errorf("%q lacks %q", line, want)
			}
		}
	}
	if lines != 2 {
		t.Errorf("found %d go run/build lines in make -n run build, want 2:\n%s", lines, out)
	}

	version = "v1.2.3"
	defer func() { version = "" }()
	if got := buildVersion(); got != "v1.2.3" {
		t.Errorf("buildVersion() = %q with a stamped version", got)
	}
}
