package origin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// fsFixtures returns the same tree as an fstest.MapFS (zero ModTime, like
// embed.FS) and as a directory on disk, so every case runs against both
// ETag schemes.
func fsFixtures(t *testing.T) map[string]*FS {
	t.Helper()
	files := map[string]string{
		"widget.js":      "console.log('w')",
		"tenants/a.json": `{"a":1}`,
		"tenants/b.json": `{"b":2}`,
		"dir/inner.txt":  "inner",
		"odd..name.txt":  "two dots inside an element are fine",
		"empty.txt":      "",
	}
	mfs := fstest.MapFS{}
	dir := t.TempDir()
	for name, body := range files {
		mfs[name] = &fstest.MapFile{Data: []byte(body), Mode: 0o644}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*FS{"mapfs": NewFS(mfs, "test map"), "dir": d}
}

func TestFSGet(t *testing.T) {
	for fsName, o := range fsFixtures(t) {
		t.Run(fsName, func(t *testing.T) {
			tests := []struct {
				key      string
				wantBody string
				wantErr  error
			}{
				{key: "/widget.js", wantBody: "console.log('w')"},
				{key: "widget.js", wantBody: "console.log('w')"},
				{key: "/tenants/a.json", wantBody: `{"a":1}`},
				{key: "/odd..name.txt", wantBody: "two dots inside an element are fine"},
				{key: "/empty.txt", wantBody: ""},
				{key: "/missing.js", wantErr: ErrNotFound},
				{key: "/widget.js/x", wantErr: ErrNotFound}, // ENOTDIR on disk
				{key: "/dir", wantErr: ErrNotFound},
				{key: "/dir/", wantErr: ErrNotFound},
				{key: "/", wantErr: ErrNotFound},
				{key: "", wantErr: ErrNotFound},
				{key: "/../etc/passwd", wantErr: ErrNotFound},
				{key: "/a/../../x", wantErr: ErrNotFound},
				{key: "/dir/../widget.js", wantErr: ErrNotFound},
				{key: "/./widget.js", wantErr: ErrNotFound},
				{key: "//x", wantErr: ErrNotFound},
				{key: "//etc/passwd", wantErr: ErrNotFound},
				{key: "\x00", wantErr: ErrNotFound},
				{key: "/widget.js\x00.png", wantErr: ErrNotFound},
				{key: `/..\..\etc\passwd`, wantErr: ErrNotFound},
				{key: `/dir\inner.txt`, wantErr: ErrNotFound},
			}
			for _, tc := range tests {
				t.Run(strings.ToValidUTF8(tc.key, "?"), func(t *testing.T) {
					obj, err := o.Get(context.Background(), tc.key, Conditions{})
					if tc.wantErr != nil {
						if obj != nil {
							obj.Body.Close()
						}
						if !errors.Is(err, tc.wantErr) {
							t.Fatalf("Get(%q) err = %v, want %v", tc.key, err, tc.wantErr)
						}
						return
					}
					if err != nil {
						t.Fatalf("Get(%q): %v", tc.key, err)
					}
					body := readObject(t, obj)
					if string(body) != tc.wantBody {
						t.Errorf("body = %q, want %q", body, tc.wantBody)
					}
					if obj.Size != int64(len(tc.wantBody)) {
						t.Errorf("Size = %d, want %d", obj.Size, len(tc.wantBody))
					}
					if len(obj.ETag) < 3 || obj.ETag[0] != '"' || obj.ETag[len(obj.ETag)-1] != '"' || strings.HasPrefix(obj.ETag, "W/") {
						t.Errorf("ETag = %q, want a strong quoted tag", obj.ETag)
					}
					if obj.ContentType != "" || obj.ContentEncoding != "" || obj.CacheControl != "" {
						t.Errorf("headers = %q %q %q, want none", obj.ContentType, obj.ContentEncoding, obj.CacheControl)
					}
				})
			}
		})
	}
}

func TestFSETag(t *testing.T) {
	for fsName, o := range fsFixtures(t) {
		t.Run(fsName, func(t *testing.T) {
			etag := func(key string) string {
				t.Helper()
				obj, err := o.Get(context.Background(), key, Conditions{})
				if err != nil {
					t.Fatalf("Get(%q): %v", key, err)
				}
				readObject(t, obj)
				return obj.ETag
			}
			first := etag("/tenants/a.json")
			if again := etag("/tenants/a.json"); again != first {
				t.Errorf("ETag changed between Gets: %q then %q", first, again)
			}
			if other := etag("/tenants/b.json"); other == first {
				t.Errorf("different files share ETag %q", first)
			}
		})
	}
}

// TestDirETagChanges checks that rewriting a file changes its ETag.
func TestDirETagChanges(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cfg.json")
	write := func(body string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	o, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	get := func() *Object {
		t.Helper()
		obj, err := o.Get(context.Background(), "/cfg.json", Conditions{})
		if err != nil {
			t.Fatal(err)
		}
		readObject(t, obj)
		return obj
	}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	write("v1", t0)
	v1 := get()
	if !v1.LastModified.Equal(t0) {
		t.Errorf("LastModified = %v, want %v", v1.LastModified, t0)
	}
	write("v2", t0.Add(time.Second)) // same size, new time
	if v2 := get(); v2.ETag == v1.ETag {
		t.Errorf("ETag %q did not change when the file changed", v1.ETag)
	}
}

func TestFSConditional(t *testing.T) {
	mtime := time.Date(2025, 6, 1, 12, 0, 0, 500_000_000, time.UTC)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.js"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "a.js"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := NewFS(fstest.MapFS{"a.js": {Data: []byte("a")}}, "map")

	for name, o := range map[string]*FS{"dir": d, "mapfs": m} {
		t.Run(name, func(t *testing.T) {
			obj, err := o.Get(context.Background(), "/a.js", Conditions{})
			if err != nil {
				t.Fatal(err)
			}
			readObject(t, obj)
			etag, lm := obj.ETag, obj.LastModified
			httpDate := lm.Truncate(time.Second) // what a client echoes back

			type condCase struct {
				name        string
				cond        Conditions
				notModified bool
			}
			tests := []condCase{
				{name: "none", cond: Conditions{}},
				{name: "If-None-Match current", cond: Conditions{IfNoneMatch: etag}, notModified: true},
				{name: "If-None-Match weak form of current", cond: Conditions{IfNoneMatch: "W/" + etag}, notModified: true},
				{name: "If-None-Match *", cond: Conditions{IfNoneMatch: "*"}, notModified: true},
				{name: "If-None-Match other", cond: Conditions{IfNoneMatch: `"other"`}},
				{name: "If-None-Match other wins over If-Modified-Since", cond: Conditions{IfNoneMatch: `"other"`, IfModifiedSince: httpDate.Add(time.Hour)}},
			}
			if lm.IsZero() {
				// No modification time (embed.FS): If-Modified-Since cannot match.
				tests = append(tests, condCase{name: "If-Modified-Since without ModTime", cond: Conditions{IfModifiedSince: time.Now()}})
			} else {
				tests = append(tests,
					condCase{name: "If-Modified-Since Last-Modified at HTTP resolution", cond: Conditions{IfModifiedSince: httpDate}, notModified: true},
					condCase{name: "If-Modified-Since later", cond: Conditions{IfModifiedSince: httpDate.Add(time.Hour)}, notModified: true},
					condCase{name: "If-Modified-Since earlier", cond: Conditions{IfModifiedSince: httpDate.Add(-time.Second)}},
				)
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					obj, err := o.Get(context.Background(), "/a.js", tc.cond)
					if tc.notModified {
						if obj != nil {
							obj.Body.Close()
						}
						if !errors.Is(err, ErrNotModified) {
							t.Fatalf("err = %v, want ErrNotModified", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("err = %v, want the object", err)
					}
					if body := readObject(t, obj); !bytes.Equal(body, []byte("a")) {
						t.Errorf("body = %q", body)
					}
				})
			}
		})
	}
}

func TestFSCanceled(t *testing.T) {
	o := NewFS(fstest.MapFS{"a.js": {Data: []byte("a")}}, "map")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	obj, err := o.Get(ctx, "/a.js", Conditions{})
	if obj != nil {
		obj.Body.Close()
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestNewDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		ok         bool
	}{
		{"directory", dir, true},
		{"missing", filepath.Join(dir, "missing"), false},
		{"file", file, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := NewDir(tc.path)
			if (err == nil) != tc.ok {
				t.Fatalf("NewDir(%q) err = %v, want ok=%v", tc.path, err, tc.ok)
			}
			if tc.ok && o.String() != "dir:"+tc.path {
				t.Errorf("String() = %q, want %q", o.String(), "dir:"+tc.path)
			}
		})
	}
}
