package resources

import (
	"context"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

const (
	completionLimit = 100  // the protocol's limit of values per response
	completionScan  = 1000 // newest events (and newest failed events) looked at per keystroke
	directionsScan  = 1000 // newest sync_log rows looked at for directions
)

// completer answers completion/complete for the prompt arguments and
// resource template variables of this package. mcp-go has one provider
// per server for each kind, so it dispatches on prompt name or template.
type completer struct{ st *state }

func (c completer) CompletePromptArgument(ctx context.Context, prompt string, arg mcp.CompleteArgument, _ mcp.CompleteContext) (*mcp.Completion, error) {
	switch {
	case prompt == PromptInvestigateEvent && arg.Name == "event_id":
		return c.eventIDs(ctx, arg.Value)
	case arg.Name == "source" && (prompt == PromptTriageRecentErrors || prompt == PromptQueueBackup):
		return fixed(sources, arg.Value), nil
	case prompt == PromptQueueBackup && arg.Name == "status":
		return fixed(queueStatuses, arg.Value), nil
	case prompt == PromptSyncFailures && arg.Name == "direction":
		return c.directions(ctx, arg.Value), nil
	case prompt == PromptSyncFailures && arg.Name == "window":
		return fixed(syncWindows, arg.Value), nil
	case prompt == PromptMCPIssues && arg.Name == "transport":
		return fixed(transports, arg.Value), nil
	}
	return &mcp.Completion{Values: []string{}}, nil
}

func (c completer) CompleteResourceArgument(ctx context.Context, uri string, arg mcp.CompleteArgument, _ mcp.CompleteContext) (*mcp.Completion, error) {
	switch {
	case uri == TemplateEvent && arg.Name == "id":
		return c.eventIDs(ctx, arg.Value)
	case uri == TemplateRunbook && arg.Name == "name":
		return fixed(RunbookNames(), arg.Value), nil
	}
	return &mcp.Completion{Values: []string{}}, nil
}

// fixed completes from a known list: the values starting with what was
// typed, case-insensitively.
func fixed(values []string, typed string) *mcp.Completion {
	typed = strings.ToLower(strings.TrimSpace(typed))
	out := []string{}
	for _, v := range values {
		if strings.HasPrefix(strings.ToLower(v), typed) {
			out = append(out, v)
		}
	}
	return &mcp.Completion{Values: out, Total: len(out)}
}

// eventIDs completes event ids from recent events, failed ones first.
func (c completer) eventIDs(ctx context.Context, typed string) (*mcp.Completion, error) {
	d := c.st.depsOrNil()
	if d == nil || d.Store == nil {
		return &mcp.Completion{Values: []string{}}, nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	ids, err := d.Store.RecentEventIDs(ctx, strings.TrimSpace(typed), completionScan, completionLimit+1)
	if err != nil {
		return nil, err
	}
	more := len(ids) > completionLimit
	if more {
		ids = ids[:completionLimit]
	}
	return &mcp.Completion{Values: ids, HasMore: more}, nil
}

// directions completes sync directions: the handlers' directions and any
// other seen recently in sync_log.
func (c completer) directions(ctx context.Context, typed string) *mcp.Completion {
	all := slices.Clone(syncDirections)
	if d := c.st.depsOrNil(); d != nil && d.Store != nil {
		ctx, cancel := withTimeout(ctx)
		defer cancel()
		if seen, err := d.Store.RecentSyncDirections(ctx, directionsScan); err == nil {
			for _, dir := range seen {
				if !slices.Contains(all, dir) {
					all = append(all, cleanLine(dir, maxFieldBytes))
				}
			}
		}
	}
	slices.Sort(all)
	return fixed(all, typed)
}
