package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrMissingTool is returned (wrapped) when versitygw or Pebble cannot
// be found: tests skip on it, the command says how to install them.
var ErrMissingTool = errors.New("missing tool")

// binaries are the programs a run starts.
type binaries struct {
	edge, dnsgeo, purge string
	versitygw, pebble   string
	// version is the edge's commit, for the report.
	version string
}

// findTools locates versitygw and Pebble: in PATH, else in the module's
// ./bin (where scripts/install-tools.sh puts them).
func findTools() (versitygw, pebble string, err error) {
	root, _ := moduleRoot()
	find := func(name string) (string, error) {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		if root != "" {
			p := filepath.Join(root, "bin", name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", fmt.Errorf("%w: %s not in PATH nor in ./bin (make tools, or scripts/install-tools.sh)", ErrMissingTool, name)
	}
	if versitygw, err = find("versitygw"); err != nil {
		return "", "", err
	}
	if pebble, err = find("pebble"); err != nil {
		return "", "", err
	}
	return versitygw, pebble, nil
}

// buildBinaries builds cmd/edge, cmd/dnsgeo and cmd/purge from the
// module around the working directory into dir (without the race
// detector, whatever the tests run with: the lab measures them; with
// the go command's defaults otherwise, so the build cache serves), or
// takes them from bin when it is set.
func buildBinaries(ctx context.Context, bin, dir string) (*binaries, error) {
	b := &binaries{}
	var err error
	if b.versitygw, b.pebble, err = findTools(); err != nil {
		return nil, err
	}
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, fmt.Errorf("building the edge: %w (or give -bin DIR with edge, dnsgeo and purge)", err)
		}
		bin = filepath.Join(dir, "bin")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./cmd/edge", "./cmd/dnsgeo", "./cmd/purge")
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/edge ./cmd/dnsgeo ./cmd/purge: %v\n%s", err, out.String())
		}
		if rev, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
			b.version = strings.TrimSpace(string(rev))
		}
	}
	b.edge, b.dnsgeo, b.purge = filepath.Join(bin, "edge"), filepath.Join(bin, "dnsgeo"), filepath.Join(bin, "purge")
	for _, p := range []string{b.edge, b.dnsgeo, b.purge} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("-bin: %w", err)
		}
	}
	if b.version == "" {
		if out, err := exec.CommandContext(ctx, b.edge, "-version").Output(); err == nil {
			b.version = strings.TrimPrefix(strings.TrimSpace(string(out)), "edge ")
		}
	}
	return b, nil
}

// moduleRoot walks up from the working directory to the edge module's
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/edgecdn/edge\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the edge module (no go.mod of github.com/edgecdn/edge above the working directory)")
		}
		dir = parent
	}
}
