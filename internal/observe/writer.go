package observe

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"
)

// contractWriter receives zerolog's JSON lines and rewrites each into the
// log contract: timestamp, level, service, component, message at top level
// (in that order), every other field in metadata, secrets redacted and PII
// masked in every string value.
//
// zerolog has no hook that sees the finished field set, and masking has to
// reach nested values (errors, dicts), so the line is decoded and re-encoded
// here rather than built differently at the call sites.
type contractWriter struct {
	out    io.Writer
	redact redactor
	now    func() time.Time

	mu sync.Mutex // serialises writes to out; one out.Write per line
}

func newContractWriter(out io.Writer, secrets []string) *contractWriter {
	return &contractWriter{
		out:    out,
		redact: newRedactor(secrets),
		now:    func() time.Time { return time.Now().UTC() },
	}
}

// contractLine is the wire shape; encoding/json keeps struct field order.
type contractLine struct {
	Timestamp string         `json:"timestamp"`
	Level     string         `json:"level"`
	Service   string         `json:"service"`
	Component string         `json:"component"`
	Message   string         `json:"message"`
	Metadata  map[string]any `json:"metadata"`
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Write handles one or more newline-terminated lines (zerolog writes exactly
// one per call and escapes newlines inside values) and writes the rewritten
// lines with a single Write on the underlying writer.
func (w *contractWriter) Write(p []byte) (int, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)

	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	for rest := p; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := enc.Encode(w.convert(line)); err != nil {
			// Only unsupported values fail to encode, and decoded JSON
			// has none; report it rather than write half a line.
			return 0, err
		}
	}
	if buf.Len() == 0 {
		return len(p), nil
	}
	w.mu.Lock()
	_, err := w.out.Write(buf.Bytes())
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// convert turns one raw line into a contract line.
func (w *contractWriter) convert(line []byte) contractLine {
	fields, err := decodeObject(line)
	if err != nil {
		return contractLine{
			Timestamp: w.now().Format(timeFormat),
			Level:     "error",
			Service:   ServiceName,
			Component: "observe",
			Message:   "unparseable log line",
			Metadata:  map[string]any{"raw": w.redact.scrub(string(line))},
		}
	}

	out := contractLine{
		Level:     contractLevel(fields["level"]),
		Service:   ServiceName,
		Component: defaultComponent,
		Metadata:  map[string]any{},
	}
	if m, ok := fields["metadata"].(map[string]any); ok {
		out.Metadata = m
		delete(fields, "metadata")
	}
	if ts, ok := fields["timestamp"].(string); ok {
		out.Timestamp = ts
		delete(fields, "timestamp")
	} else {
		out.Timestamp = w.now().Format(timeFormat)
	}
	if c, ok := fields["component"].(string); ok && c != "" {
		out.Component = c
		delete(fields, "component")
	}
	if msg, ok := fields["message"].(string); ok {
		out.Message = w.redact.scrub(msg)
		delete(fields, "message")
	}
	delete(fields, "level")
	delete(fields, "service") // always ServiceName
	// Whatever is left (including a non-object "metadata", non-string
	// timestamp or message) goes to metadata; top-level fields win over a
	// caller's metadata dict on a name clash.
	for k, v := range fields {
		out.Metadata[k] = v
	}
	w.scrubValue(out.Metadata)
	return out
}

// decodeObject decodes exactly one JSON object, numbers kept verbatim.
func decodeObject(line []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		return nil, err
	}
	if fields == nil {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON object")
	}
	return fields, nil
}

// scrubValue redacts and masks every string inside v, in place where v is a
// map or slice; it returns the scrubbed value for strings.
func (w *contractWriter) scrubValue(v any) any {
	switch t := v.(type) {
	case string:
		return w.redact.scrub(t)
	case map[string]any:
		for k, e := range t {
			t[k] = w.scrubValue(e)
		}
	case []any:
		for i, e := range t {
			t[i] = w.scrubValue(e)
		}
	}
	return v
}
