package disk

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestServesWhileIndexing: a restarted disk tier answers at once,
// before its start-up scan, and the scan then neither resurrects what was
// deleted meanwhile nor replaces what was written meanwhile.
func TestServesWhileIndexing(t *testing.T) {
	dir := t.TempDir()
	d, err := openSync(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	body := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("body %d;", i)), 100) }
	for i := range 20 {
		if _, err := d.Put(fmt.Sprintf("k%d", i), []byte("meta"), bytes.NewReader(body(i)), -1); err != nil {
			t.Fatal(err)
		}
	}
	leftover := filepath.Join(filepath.Dir(d.path("k0")), tempPrefix+"crashed")
	if err := os.WriteFile(leftover, []byte("half a file"), 0o644); err != nil {
		t.Fatal(err)
	}

	gate := make(chan struct{})
	d2, err := open(dir, Options{}, gate) // the scan waits for gate
	if err != nil {
		t.Fatal(err)
	}
	e, err := d2.Get("k1")
	if err != nil {
		t.Fatalf("Get before the scan: %v", err)
	}
	got, _ := e.ReadBody()
	e.Close()
	if !bytes.Equal(got, body(1)) {
		t.Fatal("Get before the scan: wrong body")
	}
	if !has(d2, "k2") || has(d2, "nope") {
		t.Fatal("Has before the scan")
	}
	if m, ok := d2.Meta("k3"); !ok || string(m) != "meta" {
		t.Fatalf("Meta before the scan: %q %v", m, ok)
	}
	if err := d2.Delete("k4"); err != nil {
		t.Fatal(err)
	}
	if err := d2.Delete("k6"); err != nil { // never looked up
		t.Fatal(err)
	}
	if _, err := d2.Put("k5", []byte("new"), bytes.NewReader([]byte("new body")), -1); err != nil {
		t.Fatal(err)
	}
	if n := d2.Stats().Entries; n != 4 {
		t.Fatalf("%d entries indexed before the scan, want the 4 used", n)
	}
	// A Put in progress while the scan runs keeps its temporary file.
	pr, pw := io.Pipe()
	putDone := make(chan error, 1)
	go func() {
		_, err := d2.Put("fresh", []byte("meta"), pr, -1)
		putDone <- err
	}()
	pw.Write([]byte("first part "))
	keys := make(chan int, 1)
	go func() {
		n := 0
		d2.Keys(func(string) bool { n++; return true })
		keys <- n
	}()

	close(gate)
	<-d2.Indexed()
	pw.Write([]byte("second part"))
	pw.Close()
	if err := <-putDone; err != nil {
		t.Fatalf("Put across the scan: %v", err)
	}
	if n := <-keys; n < 18 {
		t.Fatalf("Keys saw %d keys, want all 18 (Keys waits for the scan)", n)
	}
	if has(d2, "k4") || has(d2, "k6") {
		t.Fatal("the scan brought back a key deleted before it")
	}
	e, err = d2.Get("k5")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = e.ReadBody()
	e.Close()
	if string(got) != "new body" {
		t.Fatalf("k5 after the scan: %q, want the version written during it", got)
	}
	e, err = d2.Get("fresh")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = e.ReadBody()
	e.Close()
	if string(got) != "first part second part" {
		t.Fatalf("fresh: %q", got)
	}
	if n := d2.Stats().Entries; n != 19 {
		t.Fatalf("%d entries after the scan, want 19", n)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatal("a crashed run's temporary file survived the scan")
	}
}
