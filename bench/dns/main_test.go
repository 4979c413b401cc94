package main

import (
	"maps"
	"os"
	"runtime"
	"slices"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for list, want := range map[string][]int{"0": {0}, "0,2": {0, 2}, "0-3": {0, 1, 2, 3}, "1,3-4": {1, 3, 4}} {
		got, err := parseCPUList(list)
		if keys := slices.Sorted(maps.Keys(got)); err != nil || !slices.Equal(keys, want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", list, keys, err, want)
		}
	}
	for _, bad := range []string{"", "cpu0", "0,", "3-1", "-1", "0-x"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q): no error", bad)
		}
	}
}

// TestCPUBusy reads /proc/stat: CPUs 0 and 1 together have been busy
// longer than CPU 0 alone, which has been busy some time.
func TestCPUBusy(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil || runtime.NumCPU() < 2 {
		t.Skip("no /proc/stat, or one CPU")
	}
	one, both := cpuBusy(map[int]bool{0: true}), cpuBusy(map[int]bool{0: true, 1: true})
	if one <= 0 || both <= one {
		t.Errorf("busy: CPU 0 %v s, CPUs 0 and 1 %v s", one, both)
	}
}
