package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShortForm is the lab's short form: two regions of one edge, two
// browsers each, the steady, region-loss (with dnsgeo's fallback) and
// release scenarios, in namespaces as root and on loopback addresses
// otherwise. It asserts correctness only, never a timing figure: no
// wrong byte, no old version after a verified purge, the purge CLI's
// success, and nothing left behind (processes, namespaces, bridge,
// files). EDGE_LAB_MODE=loopback runs it on loopback addresses as root
// too.
func TestShortForm(t *testing.T) {
	if _, _, err := findTools(); err != nil {
		t.Skipf("%v", err)
	}
	if os.Getenv("EDGE_SKIP_S3") == "1" || os.Getenv("EDGE_SKIP_PEBBLE") == "1" {
		t.Skip("EDGE_SKIP_S3 or EDGE_SKIP_PEBBLE set: the lab needs versitygw and Pebble")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	o := Options{
		Regions:        Regions[:2],
		EdgesPerRegion: 1,
		Clients:        2,
		Duration:       4 * time.Second,
		Scenarios:      []string{Steady, RegionLoss, Release},
		Fallback:       []bool{true},
		DNSTTL:         3 * time.Second,
		HealthInterval: time.Second,
		// Short, as the README says: a region cut off during a release
		// catches up soon after the heal.
		PurgePoll:    200 * time.Millisecond,
		PurgeTimeout: 3 * time.Second,
		Mode:         Mode(os.Getenv("EDGE_LAB_MODE")),
		Log:          logWriter{t: t},
	}
	start := time.Now()
	rep, err := Run(ctx, o)
	if rep != nil {
		checkNothingLeft(t, rep)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mode %s, %d requests, %s", rep.Mode, len(rep.Records), time.Since(start).Round(time.Second))
	for _, res := range rep.Results {
		t.Log(res.Line())
	}

	if len(rep.Results) != 4 { // steady, region-loss, release twice
		t.Fatalf("%d results, want 4", len(rep.Results))
	}
	all, _, wrong, old, oldHealed := rep.RequestsStats()
	if all == 0 {
		t.Fatal("no requests recorded")
	}
	if wrong > 0 {
		t.Errorf("%d responses with wrong bytes", wrong)
	}
	if len(rep.Released) != 2 {
		t.Fatalf("%d releases said done, want 2", len(rep.Released))
	}
	if old > 0 {
		t.Errorf("%d requests got an older version than the purge CLI had said done from an edge the purge reached", old)
	}
	// Not asserted: a region cut off during the purge catches up from
	// the journal at its next read after the heal, and its own dnsgeo
	// (which never lost it) may send browsers back before that. The
	// report counts these; the lab showed it (README, "Running it in
	// several regions").
	t.Logf("requests answered with the old version by the healed region: %d", oldHealed)
	cut := len(o.Regions) - 1
	caught := false
	for _, r := range rep.Records {
		if r.Region == cut && r.Start > rep.Released[1].Healed && r.ok() && r.Version == rep.Released[1].Version {
			caught = true
		}
	}
	if !caught {
		t.Errorf("the region cut off during the purge never served the new version after the heal")
	}
	for _, r := range rep.Records {
		if r.ok() && (r.Version < 1 || r.Version > 3) {
			t.Errorf("request %+v: version %d", r, r.Version)
		}
	}
	// The CLI's own verdicts are correctness: each purge said done.
	for _, res := range rep.Results {
		for _, f := range res.Figures {
			if strings.HasPrefix(f.Name, "purge ") && f.Goal != "" && !f.Met {
				t.Errorf("%s: %s: %s\n%s", res.Title(), f.Name, f.Value, strings.Join(res.Notes, "\n"))
			}
		}
	}
	// After the last release, every browser got the last version.
	last := rep.Released[len(rep.Released)-1]
	got := 0
	for _, r := range rep.Records {
		if r.Start > last.At && r.ok() && r.Version == last.Version {
			got++
		}
	}
	if got == 0 {
		t.Error("no request got the last release")
	}
}

// checkNothingLeft: every process the run started has exited, and its
// namespaces, bridge and directory are gone.
func checkNothingLeft(t *testing.T, rep *Report) {
	t.Helper()
	for _, pid := range rep.Pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after the run (kill -0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(rep.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run's directory %s is still there: %v", rep.Dir, err)
	}
	if rep.Mode != ModeNetns {
		return
	}
	prefix := "edgelab" + strconv.Itoa(os.Getpid()) + "-"
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	if bytes.Contains(out, []byte(prefix)) {
		t.Errorf("namespaces left behind:\n%s", out)
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	for _, name := range []string{"elab" + strconv.Itoa(os.Getpid()) + ":", fmt.Sprintf("el%dr", os.Getpid()), fmt.Sprintf("el%dc", os.Getpid())} {
		if bytes.Contains(out, []byte(name)) {
			t.Errorf("link %s… left behind:\n%s", name, out)
		}
	}
}

// logWriter sends the lab's progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
