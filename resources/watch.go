package resources

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// mcp-go v1.2.1 answers resources/subscribe and subscriptions/listen but
// keeps no record of who subscribed to what (its built-in sessions do not
// implement SessionWithResourceSubscriptions) and has no "notify the
// subscribers of this URI" call. This file keeps that record from hooks and
// delivers notifications/resources/updated itself:
//
//   - protocol revisions up to 2025-11-25: resources/subscribe and
//     resources/unsubscribe on a session; delivered with
//     SendNotificationToSpecificClient, which finds the session's current
//     stream (stdio, in-process, the streamable HTTP GET stream);
//   - revision 2026-07-28: subscriptions/listen, one long-lived request
//     whose filter names the URIs; delivered on that request's session,
//     tagged with the subscription id, until the request ends.

// listenStream is one subscriptions/listen request in progress.
type listenStream struct {
	session server.ClientSession
	id      any
	uris    map[string]bool
}

type subscriptions struct {
	mu      sync.Mutex
	legacy  map[string]map[string]bool // session id → subscribed URIs
	streams map[*listenStream]struct{}
}

func newSubscriptions() subscriptions {
	return subscriptions{legacy: map[string]map[string]bool{}, streams: map[*listenStream]struct{}{}}
}

// attach adds the hooks that keep the record.
func (sb *subscriptions) attach(hooks *server.Hooks) {
	hooks.AddAfterSubscribe(func(ctx context.Context, _ any, req *mcp.SubscribeRequest, _ *mcp.EmptyResult) {
		if sess := server.ClientSessionFromContext(ctx); sess != nil && req != nil {
			sb.subscribe(sess.SessionID(), req.Params.URI)
		}
	})
	hooks.AddAfterUnsubscribe(func(ctx context.Context, _ any, req *mcp.UnsubscribeRequest, _ *mcp.EmptyResult) {
		if sess := server.ClientSessionFromContext(ctx); sess != nil && req != nil {
			sb.unsubscribe(sess.SessionID(), req.Params.URI)
		}
	})
	hooks.AddOnUnregisterSession(func(_ context.Context, sess server.ClientSession) {
		sb.dropSession(sess.SessionID())
	})
	hooks.AddBeforeSubscriptionsListen(func(ctx context.Context, id any, req *mcp.SubscriptionsListenRequest) {
		sess := server.ClientSessionFromContext(ctx)
		if sess == nil || req == nil || id == nil || len(req.Params.Notifications.ResourceSubscriptions) == 0 {
			return
		}
		ls := &listenStream{session: sess, id: id, uris: map[string]bool{}}
		for _, uri := range req.Params.Notifications.ResourceSubscriptions {
			ls.uris[uri] = true
		}
		sb.mu.Lock()
		sb.streams[ls] = struct{}{}
		sb.mu.Unlock()
		// The hook's context is the request's: it ends when the stream does.
		go func() {
			<-ctx.Done()
			sb.mu.Lock()
			delete(sb.streams, ls)
			sb.mu.Unlock()
		}()
	})
}

func (sb *subscriptions) subscribe(sessionID, uri string) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.legacy[sessionID] == nil {
		sb.legacy[sessionID] = map[string]bool{}
	}
	sb.legacy[sessionID][uri] = true
}

func (sb *subscriptions) unsubscribe(sessionID, uri string) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	delete(sb.legacy[sessionID], uri)
	if len(sb.legacy[sessionID]) == 0 {
		delete(sb.legacy, sessionID)
	}
}

func (sb *subscriptions) dropSession(sessionID string) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	delete(sb.legacy, sessionID)
}

// count returns how many sessions and streams are subscribed to uri.
func (sb *subscriptions) count(uri string) int {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	n := 0
	for _, uris := range sb.legacy {
		if uris[uri] {
			n++
		}
	}
	for ls := range sb.streams {
		if ls.uris[uri] {
			n++
		}
	}
	return n
}

// notify sends notifications/resources/updated for uri to every subscriber
// and returns how many it reached. Sends never block: a subscriber whose
// queue is full misses this update (the next one tells it again).
func (sb *subscriptions) notify(s *server.MCPServer, uri string) int {
	sb.mu.Lock()
	var sessionIDs []string
	for id, uris := range sb.legacy {
		if uris[uri] {
			sessionIDs = append(sessionIDs, id)
		}
	}
	var streams []*listenStream
	for ls := range sb.streams {
		if ls.uris[uri] {
			streams = append(streams, ls)
		}
	}
	sb.mu.Unlock()

	sent := 0
	params := map[string]any{"uri": uri}
	for _, id := range sessionIDs {
		err := s.SendNotificationToSpecificClient(id, mcp.MethodNotificationResourceUpdated, params)
		switch {
		case err == nil:
			sent++
		case errors.Is(err, server.ErrSessionNotFound):
			sb.dropSession(id) // gone without an unregister hook (e.g. an HTTP session that expired)
		}
	}
	for _, ls := range streams {
		n := mcp.JSONRPCNotification{
			JSONRPC: mcp.JSONRPC_VERSION,
			Notification: mcp.Notification{
				Method: mcp.MethodNotificationResourceUpdated,
				Params: mcp.NotificationParams{
					Meta:             map[string]any{mcp.MetaKeySubscriptionID: ls.id},
					AdditionalFields: map[string]any{"uri": uri},
				},
			},
		}
		if up, ok := ls.session.(server.SessionWithStreamableHTTPConfig); ok {
			up.UpgradeToSSEWhenReceiveNotification()
		}
		select {
		case ls.session.NotificationChannel() <- n:
			sent++
		default:
		}
	}
	return sent
}

// Watch polls for new errors — failed events and sync_log errors — every
// interval, and sends notifications/resources/updated for errors://recent
// to the sessions subscribed to it when one appears (or one leaves the
// list, e.g. an event replayed out of error); likewise for
// alerts://active when the set of pending or firing alerts changes. It
// returns when ctx ends. The first poll only takes the baseline.
//
// It compares what the resources would show, so an update is sent exactly
// when reading the resource again gives something new. Polling rather than
// LISTEN/NOTIFY: errors are written by the completer and the rescuer of any
// replica, and one cheap indexed read per interval covers them all.
func Watch(ctx context.Context, s *server.MCPServer, d Deps, interval time.Duration) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	st := stateOf(s)
	w := watcher{s: s, d: d, st: st}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		w.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type watcher struct {
	s  *server.MCPServer
	d  Deps
	st *state

	errorsSeen map[string]bool // kind:id of the errors errors://recent shows
	alertsSig  uint64
	alertsInit bool
	failing    bool // the last poll failed (log once per outage)
}

func (w *watcher) poll(ctx context.Context) {
	if ctx.Err() != nil || w.d.Store == nil {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	errs, err := w.d.Store.RecentFailures(qctx, recentErrorsLimit)
	if err != nil {
		w.fail(ctx, err)
		return
	}
	alerts, err := w.d.Store.ActiveAlertStates(qctx)
	if err != nil {
		w.fail(ctx, err)
		return
	}
	if w.failing {
		w.d.Log.Info().Msg("errors watch: database reachable again")
		w.failing = false
	}

	// Notify when the shown set changes: a new error, or one that left
	// (an event replayed out of error, pushed out by newer ones).
	seen := make(map[string]bool, len(errs))
	fresh := 0
	for _, e := range errs {
		key := e.Kind + ":" + e.ID
		seen[key] = true
		if !w.errorsSeen[key] {
			fresh++
		}
	}
	changed := fresh > 0 || len(seen) != len(w.errorsSeen)
	first := w.errorsSeen == nil
	w.errorsSeen = seen
	if changed && !first {
		n := w.st.subs.notify(w.s, URIRecentErrors)
		w.d.Log.Debug().Int("new_errors", fresh).Int("subscribers", n).Msg("errors://recent updated")
	}

	h := fnv.New64a()
	for _, a := range alerts {
		h.Write([]byte(a.Fingerprint + "\x00" + a.State + "\x00" + a.Severity + "\x00"))
	}
	if sig := h.Sum64(); !w.alertsInit || sig != w.alertsSig {
		if w.alertsInit {
			w.st.subs.notify(w.s, URIActiveAlerts)
		}
		w.alertsSig, w.alertsInit = sig, true
	}
}

func (w *watcher) fail(ctx context.Context, err error) {
	if ctx.Err() != nil || w.failing {
		return
	}
	w.failing = true
	w.d.Log.Warn().Err(err).Msg("errors watch: cannot read recent errors; retrying every interval")
}
