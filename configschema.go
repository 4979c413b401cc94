package edge

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkShape walks a decoded YAML document against the Go type it will
// be decoded into, before it is, so that a mistake is reported the way
// the user wrote it: with the line, the path of YAML keys
// (sites[0].rules[1].cache_contol), and a suggestion for a misspelt key,
// never as a Go type ("field cache_contol not found in type edge.Rule").
func checkShape(n *yaml.Node, t reflect.Type, path []any) error {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkShape(c, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind == yaml.AliasNode {
		return lineErr(n, path, "aliases (*name) are not supported: write the value out")
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Tag == "!!null" {
		return nil // an empty value: the field's zero
	}
	if t == reflect.TypeFor[Duration]() {
		if n.Kind != yaml.ScalarNode {
			return lineErr(n, path, "want a duration (90s, 5m, 24h), not a "+kindName(n.Kind))
		}
		if _, err := ParseDuration(n.Value); err != nil {
			return lineErr(n, path, err.Error())
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return lineErr(n, path, "want a mapping (key: value lines), not a "+kindName(n.Kind))
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				msg := "unknown field"
				if s := closest(k.Value, slices.Sorted(maps.Keys(fields))); s != "" {
					msg += "; did you mean " + s + "?"
				}
				return lineErr(k, append(path, k.Value), msg)
			}
			if seen[k.Value] {
				return lineErr(k, append(path, k.Value), "given twice")
			}
			seen[k.Value] = true
			if err := checkShape(v, f.Type, append(path, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return lineErr(n, path, "want a mapping (key: value lines), not a "+kindName(n.Kind))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if seen[strings.ToLower(k.Value)] {
				return lineErr(k, append(path, k.Value), "given twice")
			}
			seen[strings.ToLower(k.Value)] = true
			if err := checkShape(v, t.Elem(), append(path, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return lineErr(n, path, "want a list ([a, b] or lines starting with -), not a "+kindName(n.Kind))
		}
		for i, c := range n.Content {
			if err := checkShape(c, t.Elem(), append(path, i)); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return lineErr(n, path, "want a single value, not a "+kindName(n.Kind))
		}
	}
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "single value"
}

// lineErr is a fieldError at node n.
func lineErr(n *yaml.Node, path []any, msg string) error {
	return &fieldError{path: slices.Clone(path), msg: msg, line: n.Line}
}

// yamlFields maps a struct's YAML keys to its fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" && f.IsExported() {
			out[name] = f
		}
	}
	return out
}

// closest returns the candidate nearest to s by edit distance, if it is
// near enough to be a typo (at most a third of its length, and 3).
func closest(s string, candidates []string) string {
	best, bestD := "", min(3, max(1, len(s)/3))+1
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
