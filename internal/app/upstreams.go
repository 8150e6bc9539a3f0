package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/df-middleware/df-middleware/internal/config"
	"github.com/df-middleware/df-middleware/internal/errgroups"
	"github.com/df-middleware/df-middleware/internal/health"
	"github.com/df-middleware/df-middleware/internal/upstream"
	"github.com/df-middleware/df-middleware/internal/upstream/aloware"
	"github.com/df-middleware/df-middleware/internal/upstream/clerk"
	"github.com/df-middleware/df-middleware/internal/upstream/ghl"
	"github.com/df-middleware/df-middleware/internal/upstream/verity"
)

// Upstreams holds the clients that are configured; a nil field means its
// credentials are not set.
type Upstreams struct {
	GHL      *ghl.Client
	Aloware  *aloware.Client
	Tokens   *clerk.TokenProvider
	Verifier *clerk.Verifier
	Verity   *verity.Client
}

// NewUpstreams builds a client for every upstream whose credentials are set.
func NewUpstreams(cfg config.Config, obs upstream.Observer) (*Upstreams, error) {
	opts := upstream.Options{Observer: obs, BreakerTimeout: cfg.BreakerCooldown}
	u := &Upstreams{}
	if cfg.GHLAPIKey != "" && cfg.GHLLocationID != "" {
		o := opts
		o.RateLimit, o.RateBurst = rate.Limit(float64(cfg.GHLRatePer10s)/10), cfg.GHLRatePer10s
		u.GHL = ghl.New(cfg.GHLBaseURL, cfg.GHLAPIKey, cfg.GHLLocationID, o)
	}
	if cfg.AlowareAPIToken != "" {
		o := opts
		o.RateLimit, o.RateBurst = rate.Limit(float64(cfg.AlowareRatePerMinute)/60), min(cfg.AlowareRatePerMinute, max(100, cfg.AlowareRatePerMinute/50))
		u.Aloware = aloware.New(cfg.AlowareBaseURL, cfg.AlowareAPIToken, o)
	}
	if cfg.ClerkSecretKey != "" {
		tp, err := clerk.NewTokenProvider(cfg.ClerkAPIURL, cfg.ClerkSecretKey, opts)
		if err != nil {
			return nil, fmt.Errorf("clerk: %w", err)
		}
		u.Tokens = tp
		u.Verifier = clerk.NewVerifier(cfg.ClerkAPIURL, cfg.ClerkSecretKey, opts)
	}
	if cfg.VerityBaseURL != "" && u.Tokens != nil {
		u.Verity = verity.New(cfg.VerityBaseURL, cfg.VerityAPIKey, u.Tokens, opts)
	}
	return u, nil
}

type checker interface {
	Check(ctx context.Context) error
	BreakerState() string
}

// upstreamCheck reports an upstream ok when its cheap probe answers,
// degraded while its breaker is not closed, down when the probe fails.
func upstreamCheck(name string, c checker, missing string) health.Checker {
	return health.CheckFunc{N: name, F: func(ctx context.Context) health.Check {
		if c == nil {
			return health.Check{Status: health.NotConfigured, Message: "set " + missing}
		}
		start := time.Now()
		err := c.Check(ctx)
		res := health.Check{Status: health.OK, LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
		if st := c.BreakerState(); st != "closed" {
			res.Status, res.Message = health.Degraded, "circuit breaker "+st
		}
		if err != nil {
			res.Status, res.Message = health.Down, err.Error()
			if errors.Is(err, upstream.ErrBreakerOpen) {
				res.Status = health.Degraded
			}
		}
		return res
	}}
}

// Checkers returns the health checks of the three upstreams.
func (u *Upstreams) Checkers() []health.Checker {
	var g, a, v checker
	if u.GHL != nil {
		g = u.GHL
	}
	if u.Aloware != nil {
		a = u.Aloware
	}
	if u.Verity != nil {
		v = u.Verity
	}
	return []health.Checker{
		upstreamCheck("ghl_api", g, "GHL_API_KEY and GHL_LOCATION_ID"),
		upstreamCheck("aloware_api", a, "ALOWARE_API_TOKEN"),
		upstreamCheck("verity_api", v, "VERITY_BASE_URL and CLERK_SECRET_KEY"),
	}
}

// Breakers returns the breaker state of every configured upstream, for the
// upstream_breaker_state gauge. Clerk's token and JWKS clients each have a
// breaker; "clerk" reports the less healthy of the two.
func (u *Upstreams) Breakers() map[string]func() string {
	b := map[string]func() string{}
	if u.GHL != nil {
		b["ghl"] = u.GHL.BreakerState
	}
	if u.Aloware != nil {
		b["aloware"] = u.Aloware.BreakerState
	}
	if u.Verity != nil {
		b["verity"] = u.Verity.BreakerState
	}
	var clerk []func() string
	if u.Tokens != nil {
		clerk = append(clerk, u.Tokens.BreakerState)
	}
	if u.Verifier != nil {
		clerk = append(clerk, u.Verifier.BreakerState)
	}
	if len(clerk) > 0 {
		b["clerk"] = func() string {
			worst := "closed"
			for _, f := range clerk {
				switch st := f(); {
				case st == "open":
					return st
				case st == "half-open":
					worst = st
				}
			}
			return worst
		}
	}
	return b
}

// clerkSubject adapts the Clerk verifier to the gateway's interface.
type clerkSubject struct{ v *clerk.Verifier }

func (c clerkSubject) Verify(ctx context.Context, token string) (string, error) {
	claims, err := c.v.Verify(ctx, token)
	if err != nil {
		return "", err
	}
	return claims.Subject, nil
}

// observers fans one upstream call out to several observers (metrics, error
// groups); it forwards attempt starts to those that want them.
type observers []upstream.Observer

func (o observers) ObserveCall(ctx context.Context, up, endpoint, method string, status int, d time.Duration, err error) {
	for _, x := range o {
		x.ObserveCall(ctx, up, endpoint, method, status, d, err)
	}
}

// errorGroupObserver counts failed upstream calls in error_groups.
type errorGroupObserver struct{ rec *errgroups.Recorder }

func (e errorGroupObserver) ObserveCall(_ context.Context, up, _, _ string, _ int, _ time.Duration, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		e.rec.Add("upstream:"+up, err, "")
	}
}
