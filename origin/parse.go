package origin

import (
	"context"
	"fmt"
	"strings"

	"github.com/edgecdn/edge/internal/s3client"
)

// Parse builds an Origin from a spec as given on the command line or in the
// config file:
//
//	s3://BUCKET[/PREFIX][?region=R&endpoint=URL&path_style=true&connect_timeout=D&header_timeout=D]   see NewS3
//	dir:PATH                                                                                        see NewDir
//	http(s)://HOST[:PORT][/PREFIX][?ca_file=PEM&connect_timeout=D&header_timeout=D]                 see NewHTTP
//
// Errors name the spec (with any password in it redacted).
func Parse(ctx context.Context, spec string) (Origin, error) {
	switch {
	case strings.HasPrefix(spec, "s3://"):
		u, err := s3client.ParseURL(spec)
		if err != nil {
			return nil, fmt.Errorf("origin %q: %w", s3client.Redact(spec), err)
		}
		o, err := NewS3(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("origin %q: %w", s3client.Redact(spec), err)
		}
		return o, nil
	case strings.HasPrefix(spec, "dir:"):
		path := strings.TrimPrefix(spec, "dir:")
		if path == "" {
			return nil, fmt.Errorf("origin %q: empty path (want dir:PATH)", spec)
		}
		o, err := NewDir(path)
		if err != nil {
			return nil, fmt.Errorf("origin %q: %w", spec, err)
		}
		return o, nil
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		u, err := s3client.ParseURL(spec)
		if err != nil {
			return nil, fmt.Errorf("origin %q: %w", s3client.Redact(spec), err)
		}
		o, err := NewHTTP(u)
		if err != nil {
			return nil, fmt.Errorf("origin %q: %w", s3client.Redact(spec), err)
		}
		return o, nil
	}
	return nil, fmt.Errorf("origin %q: unknown scheme (want s3://BUCKET[/PREFIX], http(s)://HOST[/PREFIX] or dir:PATH)", spec)
}
