// Package clerk provides what df-middleware needs from Clerk's Backend API,
// through clerk-sdk-go v2: session tokens to call Verity on behalf of a
// signed-in user (TokenProvider) and verification of Clerk session JWTs for
// the Verity gateway (Verifier). The SDK's HTTP calls run through the
// common upstream machinery (breaker, rate limit, Observer) via
// upstream.Client.Transport, and are retried with upstream.Client.Retry.
package clerk

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	clerksdk "github.com/clerk/clerk-sdk-go/v2"
	"github.com/df-middleware/df-middleware/internal/upstream"
)

// DefaultAPIURL is Clerk's Backend API.
const DefaultAPIURL = clerksdk.APIURL

// sdk is the shared plumbing of TokenProvider and Verifier: an SDK client
// config whose HTTP calls go through an upstream.Client.
type sdk struct {
	http    *upstream.Client
	config  *clerksdk.ClientConfig
	backend clerksdk.Backend
	apiURL  *url.URL
}

func newSDK(apiURL, secretKey string, o upstream.Options) (*sdk, error) {
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	u, err := url.Parse(strings.TrimRight(apiURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, errors.New("clerk: CLERK_API_URL must be an absolute URL such as https://api.clerk.com/v1")
	}
	o.Name = "clerk"
	o.BaseURL = u.String()
	o.Secrets = append(slices.Clip(o.Secrets), secretKey)
	s := &sdk{http: upstream.New(o), apiURL: u}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	s.config = &clerksdk.ClientConfig{BackendConfig: clerksdk.BackendConfig{
		URL:        clerksdk.String(u.String()),
		Key:        clerksdk.String(secretKey),
		HTTPClient: &http.Client{Transport: s.http.Transport(s.endpoint), Timeout: timeout},
	}}
	s.backend = clerksdk.NewBackend(&s.config.BackendConfig)
	return s, nil
}

const defaultTimeout = 10 * time.Second // upstream's default per attempt

// endpoint turns a Clerk URL into a bounded label: "/sessions/{id}/tokens".
func (s *sdk) endpoint(req *http.Request) string {
	p := strings.TrimPrefix(req.URL.Path, s.apiURL.Path)
	segs := strings.Split(strings.Trim(p, "/"), "/")
	for i, seg := range segs {
		if i > 0 && !knownSegment[seg] {
			segs[i] = "{id}"
		}
	}
	return "/" + strings.Join(segs, "/")
}

var knownSegment = map[string]bool{"tokens": true, "revoke": true, "verify": true, "count": true}

// call runs one SDK call with retries, turning its error into an
// *upstream.Error: clerk-sdk-go returns *clerk.APIErrorResponse for Clerk
// error bodies but a bare errors.New(body) for others, so the status is
// taken from what Transport recorded.
func (s *sdk) call(ctx context.Context, endpoint string, fn func(ctx context.Context) error) error {
	// Every call made here is safe to repeat: reads, and token creation
	// which has no side effect beyond a fresh short-lived JWT.
	return s.http.Retry(ctx, true, func(ctx context.Context) error {
		cctx, last := upstream.RecordErrors(ctx)
		err := fn(cctx)
		if err == nil {
			return nil
		}
		if e := last(); e != nil {
			return e
		}
		var ue *upstream.Error
		if errors.As(err, &ue) {
			return ue
		}
		if ctx.Err() != nil {
			return &upstream.Error{Upstream: "clerk", Endpoint: endpoint, Retryable: true, Err: ctx.Err()}
		}
		return &upstream.Error{Upstream: "clerk", Endpoint: endpoint, Message: "unexpected response", Err: err}
	})
}
