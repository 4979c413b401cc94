package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// defaultAdminPort is the edges' default -admin port, for --edges-dns
// names given without one.
const defaultAdminPort = "9080"

// target is one edge to reach.
type target struct {
	URL          string // admin base URL, without a trailing slash
	Name, Region string // from the registry or the edge's answer
	Registered   bool   // in the journal's registry: it catches up on return
	serverName   string // TLS server name for an https edge found by DNS
}

// label names the edge for people: its name, else its URL.
func (t *target) label() string {
	if t.Name != "" {
		return t.Name
	}
	return t.URL
}

// normalizeURL checks an admin URL and drops a trailing slash.
func normalizeURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("%q: want http(s)://HOST:PORT, the edge's admin listener", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// parseEdgesFile reads --edges-file: one admin URL per line; blank lines
// and text after # are ignored. Errors name the line.
func parseEdgesFile(data string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		u, err := normalizeURL(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		out = append(out, u)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// resolveEdges finds every A and AAAA record of spec (NAME[:PORT] or
// http(s)://NAME[:PORT]) with resolver (host:port; "" for the system's).
func resolveEdges(ctx context.Context, spec, resolver string, timeout time.Duration) ([]*target, error) {
	scheme, rest := "http", spec
	if s, r, ok := strings.Cut(spec, "://"); ok {
		scheme, rest = s, r
		if scheme != "http" && scheme != "https" {
			return nil, fmt.Errorf("--edges-dns %q: want NAME[:PORT] or http(s)://NAME[:PORT]", spec)
		}
	}
	name, port := rest, defaultAdminPort
	if h, p, err := net.SplitHostPort(rest); err == nil {
		name, port = h, p
	}
	if name == "" || strings.ContainsAny(name, "/?# ") {
		return nil, fmt.Errorf("--edges-dns %q: want NAME[:PORT] or http(s)://NAME[:PORT]", spec)
	}
	r := net.DefaultResolver
	if resolver != "" {
		if _, _, err := net.SplitHostPort(resolver); err != nil {
			resolver = net.JoinHostPort(resolver, "53")
		}
		var d net.Dialer
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, resolver) // udp, or tcp for a truncated answer
		}}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs, err := r.LookupIPAddr(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("--edges-dns %s: %w", name, err)
	}
	var out []*target
	for _, a := range addrs {
		t := &target{URL: scheme + "://" + net.JoinHostPort(a.IP.String(), port)}
		if scheme == "https" {
			t.serverName = name
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *target) int { return strings.Compare(a.URL, b.URL) })
	return out, nil
}

// targets gathers the edges from every source given, once each. notes
// are things to tell the user (registry entries skipped).
func (c *cli) targets(ctx context.Context) (list []*target, notes []string, err error) {
	byURL := map[string]*target{}
	add := func(t *target) {
		if old, ok := byURL[t.URL]; ok {
			if t.Registered {
				old.Registered, old.Name, old.Region = true, t.Name, t.Region
			}
			return
		}
		byURL[t.URL] = t
		list = append(list, t)
	}
	if c.o.edges != "" {
		for _, s := range strings.Split(c.o.edges, ",") {
			if strings.TrimSpace(s) == "" {
				continue
			}
			u, err := normalizeURL(s)
			if err != nil {
				return nil, nil, fmt.Errorf("--edges: %v", err)
			}
			add(&target{URL: u})
		}
	}
	if c.o.edgesFile != "" {
		b, err := os.ReadFile(c.o.edgesFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--edges-file: %w", err)
		}
		urls, err := parseEdgesFile(string(b))
		if err != nil {
			return nil, nil, fmt.Errorf("--edges-file %s: %v", c.o.edgesFile, err)
		}
		for _, u := range urls {
			add(&target{URL: u})
		}
	}
	if c.o.edgesDNS != "" {
		ts, err := resolveEdges(ctx, c.o.edgesDNS, c.o.resolver, c.o.timeout)
		if err != nil {
			return nil, nil, err
		}
		for _, t := range ts {
			add(t)
		}
	}
	if c.journal != nil {
		rctx, cancel := context.WithTimeout(ctx, c.o.timeout)
		defer cancel()
		edges, err := c.journal.Edges(rctx)
		switch {
		case err != nil && len(edges) == 0:
			return nil, nil, fmt.Errorf("--journal %s: reading the registry: %w", c.journal, err)
		case err != nil:
			// The edges behind those entries still read the record from
			// the journal, but none of them is confirmed.
			c.unlisted = fmt.Sprintf("edges whose registry entries could not be read (%v) (%s)", err, catchUpText)
			notes = append(notes, c.unlisted)
		}
		skipped := 0
		for _, e := range edges {
			if c.now().Sub(e.LastSeen) > c.o.registryAge {
				skipped++
				continue
			}
			u, err := normalizeURL(e.AdminURL)
			if err != nil {
				notes = append(notes, fmt.Sprintf("registry entry %s skipped: %v", e.Name, err))
				continue
			}
			add(&target{URL: u, Name: e.Name, Region: e.Region, Registered: true})
		}
		if skipped > 0 {
			notes = append(notes, fmt.Sprintf("%d registry entries not refreshed for over %s skipped (decommissioned edges; see --registry-max-age)", skipped, c.o.registryAge))
		}
	}
	return list, notes, nil
}
