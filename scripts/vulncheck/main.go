// Command vulncheck reads the JSON stream of `govulncheck -format json` on
// stdin, prints every vulnerability found in called code, and exits 1 when
// any of them is not accepted. It is run by scripts/vulncheck.sh and is no
// part of the service.
//
// Only findings in the Go standard library can be accepted (-accept-stdlib):
// they are fixed by a newer Go toolchain, not by `go get`, so the project may
// have to live with them until it moves to one. Accepted findings are still
// printed, each marked ACCEPTED; an accepted id that the scan no longer
// reports is named too, so the list gets pruned. Findings in modules never
// pass: upgrade the module.
//
// Findings in imported packages or required modules whose vulnerable symbols
// the code does not call are counted, not failed on.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
)

// The subset of golang.org/x/vuln/internal/govulncheck's message types read here.
type message struct {
	Config *struct {
		GoVersion string `json:"go_version"`
	} `json:"config"`
	OSV     *osvEntry `json:"osv"`
	Finding *finding  `json:"finding"`
}

type osvEntry struct {
	ID      string `json:"id"`
	Summary string `json:"summary"`
}

type finding struct {
	OSV          string   `json:"osv"`
	FixedVersion string   `json:"fixed_version"`
	Trace        []*frame `json:"trace"`
}

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
	Receiver string `json:"receiver"`
	Position *struct {
		Filename string `json:"filename"`
		Line     int    `json:"line"`
		Column   int    `json:"column"`
	} `json:"position"`
}

func (f *frame) symbol() string {
	name := f.Function
	if f.Receiver != "" {
		name = strings.TrimPrefix(f.Receiver, "*") + "." + name
	}
	// The last path element, or the last two for a major-version suffix
	// (go-jose/v3).
	parts := strings.Split(f.Package, "/")
	pkg := parts[len(parts)-1]
	if n := len(parts); n > 1 && len(pkg) > 1 && pkg[0] == 'v' && strings.Trim(pkg[1:], "0123456789") == "" {
		pkg = parts[n-2] + "/" + pkg
	}
	return pkg + "." + name
}

// vuln is one vulnerability found in called code, with its example traces.
type vuln struct {
	id, module, version, fixed string
	traces                     []string
}

func main() {
	accept := flag.String("accept-stdlib", "", "comma- or space-separated ids of standard-library findings to accept")
	strict := flag.Bool("strict", false, "accept nothing, not even -accept-stdlib")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, strings.FieldsFunc(*accept, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }), *strict); err != nil {
		fmt.Fprintln(os.Stderr, "vulncheck:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, accepted []string, strict bool) error {
	dec := json.NewDecoder(in)
	summaries := map[string]string{}
	called := map[string]*vuln{}
	uncalled := map[string]bool{}
	goVersion := ""
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("reading govulncheck's JSON output: %w", err)
		}
		switch {
		case m.Config != nil:
			goVersion = m.Config.GoVersion
		case m.OSV != nil:
			summaries[m.OSV.ID] = m.OSV.Summary
		case m.Finding != nil && len(m.Finding.Trace) > 0:
			f := m.Finding
			top := f.Trace[0]
			if top.Function == "" { // package- or module-level: imported or required, not called
				uncalled[f.OSV] = true
				continue
			}
			// One id can cover the standard library and a module (x/net
			// and net/http share HTTP/2 code): each is its own finding.
			key := f.OSV + " " + top.Module
			v := called[key]
			if v == nil {
				v = &vuln{id: f.OSV, module: top.Module, version: top.Version, fixed: f.FixedVersion}
				called[key] = v
			}
			v.traces = append(v.traces, trace(f.Trace))
		}
	}
	calledIDs := map[string]bool{}
	for _, v := range called {
		calledIDs[v.id] = true
		delete(uncalled, v.id)
	}

	keys := make([]string, 0, len(called))
	for k := range called {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	failed, failedStdlib := 0, 0
	for _, k := range keys {
		v := called[k]
		id := v.id
		status := "FAIL"
		if !strict && v.module == "stdlib" && slices.Contains(accepted, id) {
			status = "ACCEPTED (standard library: needs a newer Go toolchain; listed in scripts/vulncheck.sh)"
		} else {
			failed++
			if v.module == "stdlib" {
				failedStdlib++
			}
		}
		fmt.Fprintf(out, "%s %s: %s\n", id, status, summaries[id])
		where := v.module + "@" + v.version
		if v.module == "stdlib" {
			where = "Go standard library " + v.version
		}
		fixed := v.fixed
		if fixed == "" {
			fixed = "no fixed version yet"
		}
		fmt.Fprintf(out, "    found in %s, fixed in %s; https://pkg.go.dev/vuln/%s\n", where, fixed, id)
		sort.Strings(v.traces)
		v.traces = slices.Compact(v.traces)
		for i, t := range v.traces {
			if i == 3 {
				fmt.Fprintf(out, "    … and %d more call paths\n", len(v.traces)-i)
				break
			}
			fmt.Fprintf(out, "    %s\n", t)
		}
	}
	for _, id := range accepted {
		if !calledIDs[id] {
			fmt.Fprintf(out, "note: accepted id %s is not reported any more: remove it from scripts/vulncheck.sh\n", id)
		}
	}
	fmt.Fprintf(out, "govulncheck (%s): %d vulnerabilities in called code (%d failing, %d accepted), %d more in imported packages or required modules but not called\n",
		orUnknown(goVersion), len(called), failed, len(called)-failed, len(uncalled))
	var todo []string
	if failed > failedStdlib {
		todo = append(todo, "upgrade the modules named above (go get MODULE@FIXED, go mod tidy)")
	}
	if failedStdlib > 0 {
		todo = append(todo, "build with a Go toolchain that fixes the standard-library ones")
	}
	if len(todo) > 0 {
		return errors.New("vulnerable code is called: " + strings.Join(todo, "; "))
	}
	return nil
}

// trace renders a call path from the project's code (the last frame) to the
// vulnerable symbol (the first).
func trace(frames []*frame) string {
	entry := frames[len(frames)-1]
	pos := ""
	if entry.Position != nil && entry.Position.Line > 0 {
		pos = fmt.Sprintf("%s:%d: ", entry.Position.Filename, entry.Position.Line)
	}
	if len(frames) == 1 {
		return pos + entry.symbol()
	}
	via := " → "
	if len(frames) > 2 {
		via = " → … → "
	}
	return pos + entry.symbol() + via + frames[0].symbol()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown Go version"
	}
	return s
}
