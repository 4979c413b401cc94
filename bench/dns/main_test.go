package main

import (
	"os"
	"testing"
)

// TestCPUBusy reads /proc/stat: CPUs 0 and 1 together have been busy
// at least as long as CPU 0 alone, which has been busy some time.
func TestCPUBusy(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc/stat")
	}
	one, both := cpuBusy("0"), cpuBusy("0-1")
	if one <= 0 || both < one {
		t.Errorf("cpuBusy(0) = %v, cpuBusy(0-1) = %v", one, both)
	}
	if three := cpuBusy("0,1"); three < one {
		t.Errorf("cpuBusy(0,1) = %v < cpuBusy(0) = %v", three, one)
	}
}
