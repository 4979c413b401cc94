package origin

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Parse builds an Origin from a spec as given on the command line or in the
// config file:
//
//	s3://BUCKET[/PREFIX][?region=R&endpoint=URL&path_style=true&connect_timeout=D&header_timeout=D]   see NewS3
//	dir:PATH                                                                                        see NewDir
//
// Errors name the spec (with any password in it redacted).
func Parse(ctx context.Context, spec string) (Origin, error) {
	switch {
	case strings.HasPrefix(spec, "s3://"):
		u, err := url.Parse(spec)
		if err != nil {
			// *url.Error repeats the whole spec; keep only the reason.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("origin %q: %w", redactUserinfo(spec), err)
		}
		o, err := NewS3(ctx, u)
		if err != nil {
			name := spec
			if _, hasPassword := u.User.Password(); hasPassword {
				name = u.Redacted()
			}
			return nil, fmt.Errorf("origin %q: %w", name, err)
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
	}
	return nil, fmt.Errorf("origin %q: unknown scheme (want s3://BUCKET[/PREFIX] or dir:PATH)", spec)
}

// redactUserinfo hides anything before an "@" in the authority of a URL
// that url.Parse could not parse, in case it is a secret.
func redactUserinfo(spec string) string {
	rest := strings.TrimPrefix(spec, "s3://")
	auth, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(auth, "@"); i >= 0 {
		return "s3://xxxxx" + rest[i:]
	}
	return spec
}
