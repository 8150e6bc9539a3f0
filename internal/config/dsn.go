package config

import (
	"errors"
	"net/url"
	"strings"
)

// databasePassword returns the password in a PostgreSQL connection string,
// URL (postgres://user:pass@host/db?password=...) or key=value
// (host=... password='...') form; "" when it has none.
//
// Written by hand rather than with pgconn.ParseConfig because ParseConfig
// also reads PG* environment variables, the passfile and TLS files, and fails
// when those are missing; only the string's own password is wanted here.
func databasePassword(dsn string) (string, error) {
	if dsn == "" {
		return "", nil
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// url.Error quotes the whole string, password included.
			return "", errors.New("the URL does not parse")
		}
		if pw, ok := u.User.Password(); ok {
			return pw, nil
		}
		return u.Query().Get("password"), nil
	}
	if strings.Contains(dsn, "://") {
		return "", errors.New("a URL must start with postgres:// or postgresql://")
	}
	settings, err := parseKeyValueDSN(dsn)
	if err != nil {
		return "", err
	}
	return settings["password"], nil
}

// parseKeyValueDSN parses libpq's key=value form: pairs separated by
// space, space allowed around "=", values either bare (ending at space) or
// single-quoted, backslash escaping the next character in both.
func parseKeyValueDSN(s string) (map[string]string, error) {
	settings := map[string]string{}
	s = strings.TrimSpace(s)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errors.New("expected key=value pairs")
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, " \t\n'") {
			return nil, errors.New("expected key=value pairs")
		}
		s = strings.TrimLeft(s[eq+1:], " \t\n")
		var val strings.Builder
		quoted := strings.HasPrefix(s, "'")
		if quoted {
			s = s[1:]
		}
		i, closed := 0, false
		for ; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				val.WriteByte(s[i])
				continue
			}
			if quoted && c == '\'' {
				closed = true
				i++
				break
			}
			if !quoted && (c == ' ' || c == '\t' || c == '\n') {
				break
			}
			val.WriteByte(c)
		}
		if quoted && !closed {
			return nil, errors.New("a quoted value is not closed")
		}
		settings[key] = val.String()
		s = strings.TrimLeft(s[i:], " \t\n")
	}
	return settings, nil
}
