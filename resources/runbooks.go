package resources

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// The runbooks are the Markdown files in runbooks/ (docs/runbooks/README.md
// points here): one source for the operators who read them on disk and
// the assistants that read them as runbook://{name}. A file's name is the
// runbook's name; its first heading the title; its first paragraph the
// summary.
//
//go:embed runbooks/*.md
var runbookFS embed.FS

type runbook struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Summary string `json:"summary"`
	URI     string `json:"uri"`
	text    string
}

var (
	runbooksOnce sync.Once
	runbooks     []runbook
	runbooksErr  error
)

// runbookIndex parses the embedded runbooks once.
func runbookIndex() ([]runbook, error) {
	runbooksOnce.Do(func() { runbooks, runbooksErr = loadRunbooks(runbookFS) })
	return runbooks, runbooksErr
}

func loadRunbooks(fsys fs.FS) ([]runbook, error) {
	files, err := fs.Glob(fsys, "runbooks/*.md")
	if err != nil {
		return nil, err
	}
	var out []runbook
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(path.Base(f), ".md")
		title, summary := titleAndSummary(string(b))
		if title == "" || summary == "" {
			return nil, fmt.Errorf("resources: runbook %s needs a # title and a first paragraph", f)
		}
		out = append(out, runbook{Name: name, Title: title, Summary: summary, URI: "runbook://" + name, text: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func titleAndSummary(md string) (title, summary string) {
	var para []string
	for _, line := range strings.Split(md, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case title == "" && strings.HasPrefix(line, "# "):
			title = strings.TrimPrefix(line, "# ")
		case title == "":
		case line == "" && len(para) > 0:
			return title, strings.Join(para, " ")
		case strings.HasPrefix(line, "#"):
			if len(para) > 0 {
				return title, strings.Join(para, " ")
			}
		case line != "":
			para = append(para, line)
		}
	}
	return title, strings.Join(para, " ")
}

// RunbookNames lists the runbooks, sorted.
func RunbookNames() []string {
	books, _ := runbookIndex()
	names := make([]string, len(books))
	for i, b := range books {
		names[i] = b.Name
	}
	return names
}

func findRunbook(name string) (runbook, bool) {
	books, _ := runbookIndex()
	for _, b := range books {
		if b.Name == name {
			return b, true
		}
	}
	return runbook{}, false
}

func (h handlers) readRunbookIndex(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	books, err := runbookIndex()
	if err != nil {
		return nil, err
	}
	return jsonContents(req.Params.URI, map[string]any{"runbooks": books})
}

func (h handlers) readRunbook(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	name := strings.TrimPrefix(req.Params.URI, "runbook://")
	b, ok := findRunbook(name)
	if !ok {
		return nil, fmt.Errorf("%w: no runbook named %q; runbooks: %s (runbook://index lists them)",
			server.ErrResourceNotFound, cleanLine(name, 80), strings.Join(RunbookNames(), ", "))
	}
	return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: mimeMarkdown, Text: b.text}}, nil
}
