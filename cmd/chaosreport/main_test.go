package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/chaos"
)

// The report lists the results in scenario order, marks failures, and keeps
// the hand-written findings of the previous report.
func TestRenderKeepsFindings(t *testing.T) {
	in := t.TempDir()
	drain := 1.5
	for _, r := range []chaos.Result{
		{Scenario: "replicas", Mode: "full", Started: time.Now(), Sent: 10, Acknowledged: 10, Ended: map[string]int{"done": 10}, Pass: true},
		{Scenario: "sigkill", Mode: "full", Started: time.Now(), Sent: 12, Acknowledged: 11, Refused: map[string]int{"connection error": 1},
			Ended: map[string]int{"done": 11}, RecoveryDrainS: &drain, Problems: []string{"1 events processed more than once"}},
	} {
		b, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(in, r.Scenario+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "reliability.md")
	old := "# old\n" + findingsBegin + "\nWe found X and fixed it.\n" + findingsEnd + "\nrest\n"
	if err := os.WriteFile(out, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, want := range []string{
		findingsBegin + "\nWe found X and fixed it.\n" + findingsEnd,
		"## 1. SIGKILL of the service mid-load, restart", "## 2. Three replicas",
		"**Result: FAIL.**", "1 events processed more than once", "connection error 1", "1.50 s",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q:\n%s", want, doc)
		}
	}
	if strings.Contains(doc, "# old") {
		t.Error("the old report's generated part was kept")
	}
	if err := run(t.TempDir(), out); err == nil {
		t.Error("no results: want an error")
	}
}
