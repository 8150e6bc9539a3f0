package chaos

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
)

// record is what the load driver knows about one request.
type record struct {
	Seq     int
	Kind    string // sandbox.KindGHLContact or sandbox.KindTextingMessage
	Key     string // the dedupe key intake derives: ghl:wh:<webhookId>, texting:message.received:<messageId>
	ID      string // webhookId or messageId
	Phone   string // the contact's phone (GHL) or the sender (texting)
	Target  string // base URL it was sent to
	Sent    time.Time
	Latency time.Duration
	Code    int    // HTTP status; 0 when no answer
	Err     string // "connection error", "timeout" when no answer
	Acked   bool   // 2xx
	EventID string // id in the answer of a 2xx
	// Poison marks an event expected to end error.
	Poison bool
}

// refusal names why a request was not acknowledged.
func (r record) refusal() string {
	if r.Code != 0 {
		return strconv.Itoa(r.Code)
	}
	return r.Err
}

// loadSpec configures a steady load.
type loadSpec struct {
	Kind    string
	Rate    float64       // requests per second in total
	Workers int           // concurrent requests at most (default 64)
	Timeout time.Duration // per request (default 20 s): longer is a hang
	// Targets returns the base URLs to spread requests over (round-robin);
	// read before every request, so a scenario can take a replica out.
	Targets func() []string
}

// loadDriver posts signed webhooks at a steady rate and records each one.
type loadDriver struct {
	t      *testing.T
	spec   loadSpec
	sec    sandbox.WebhookSecrets
	run    string
	client *http.Client

	seq     atomic.Int64
	rr      atomic.Uint64
	mu      sync.Mutex
	records []record
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped bool
}

func newLoadDriver(t *testing.T, spec loadSpec, sec secrets) *loadDriver {
	if spec.Workers <= 0 {
		spec.Workers = 64
	}
	if spec.Timeout <= 0 {
		spec.Timeout = 20 * time.Second
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        2 * spec.Workers,
		MaxIdleConnsPerHost: 2 * spec.Workers,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	d := &loadDriver{t: t, spec: spec, sec: sec.webhookSecrets(), run: sandbox.NewRunID(),
		client: &http.Client{Timeout: spec.Timeout, Transport: tr}}
	t.Cleanup(func() { d.stop(); tr.CloseIdleConnections() })
	return d
}

// start releases requests at spec.Rate until stop.
func (d *loadDriver) start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	ticks := make(chan struct{}, 1<<16)
	d.wg.Go(func() {
		defer close(ticks)
		interval := time.Duration(float64(time.Second) / d.spec.Rate)
		begin := time.Now()
		for i := 0; ; i++ {
			if w := time.Until(begin.Add(time.Duration(i) * interval)); w > 0 {
				select {
				case <-time.After(w):
				case <-ctx.Done():
					return
				}
			} else if ctx.Err() != nil {
				return
			}
			ticks <- struct{}{}
		}
	})
	for range d.spec.Workers {
		d.wg.Go(func() {
			for range ticks {
				if ctx.Err() != nil {
					continue // stopped: drop what is queued instead of bursting it out
				}
				d.send(d.spec.Kind, nil)
			}
		})
	}
}

// stop ends the load and waits for the requests in flight.
func (d *loadDriver) stop() {
	d.mu.Lock()
	if d.stopped || d.cancel == nil {
		d.stopped = true
		d.mu.Unlock()
		return
	}
	d.stopped = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
}

// send builds delivery number seq of kind, applies edit to its JSON fields
// (then re-signs it), posts it to the next target and records the outcome.
func (d *loadDriver) send(kind string, edit func(map[string]any)) record {
	seq := int(d.seq.Add(1)) - 1
	wh, err := sandbox.SampleWebhook(kind, d.run, seq, time.Now(), d.sec)
	if err != nil {
		panic(err) // kinds and secrets are fixed by the test
	}
	var fields map[string]any
	if err := json.Unmarshal(wh.Body, &fields); err != nil {
		panic(err)
	}
	if edit != nil {
		edit(fields)
		if wh.Body, err = json.Marshal(fields); err != nil {
			panic(err)
		}
		if kind == sandbox.KindGHLContact {
			wh.Header.Set("X-GHL-Signature", base64.StdEncoding.EncodeToString(ed25519.Sign(d.sec.GHLKey, wh.Body)))
		} else {
			panic("chaos: edit is only supported for GHL webhooks")
		}
	}
	rec := record{Seq: seq, Kind: kind}
	switch kind {
	case sandbox.KindGHLContact:
		rec.ID, _ = fields["webhookId"].(string)
		rec.Phone, _ = fields["phone"].(string)
		rec.Key = "ghl:wh:" + rec.ID
	case sandbox.KindTextingMessage:
		rec.ID, _ = fields["messageId"].(string)
		rec.Phone, _ = fields["from"].(string)
		rec.Key = "texting:message.received:" + rec.ID
	default:
		panic("chaos: unsupported kind " + kind)
	}
	targets := d.spec.Targets()
	rec.Target = targets[int(d.rr.Add(1)-1)%len(targets)]
	rec.Sent = time.Now()
	req, _ := http.NewRequest(http.MethodPost, rec.Target+wh.Path, bytes.NewReader(wh.Body))
	req.Header = wh.Header
	resp, err := d.client.Do(req)
	rec.Latency = time.Since(rec.Sent)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			rec.Err = "timeout"
		} else {
			rec.Err = "connection error"
		}
	} else {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		rec.Code = resp.StatusCode
		if resp.StatusCode/100 == 2 {
			rec.Acked = true
			var r struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(body, &r)
			rec.EventID = r.ID
		}
	}
	d.mu.Lock()
	d.records = append(d.records, rec)
	d.mu.Unlock()
	return rec
}

// snapshot returns the records so far.
func (d *loadDriver) snapshot() []record {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]record(nil), d.records...)
}

// markPoison flags the records with these keys as expected to end error.
func (d *loadDriver) markPoison(keys map[string]bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.records {
		if keys[d.records[i].Key] {
			d.records[i].Poison = true
		}
	}
}

// firstAckAfter is the time from t0 to the first request sent at or after
// t0 that was acknowledged; nil when none was.
func firstAckAfter(recs []record, t0 time.Time) *float64 {
	var best time.Time
	for _, r := range recs {
		if r.Acked && !r.Sent.Before(t0) {
			end := r.Sent.Add(r.Latency)
			if best.IsZero() || end.Before(best) {
				best = end
			}
		}
	}
	if best.IsZero() {
		return nil
	}
	return secondsPtr(best.Sub(t0))
}

func describeLoad(spec loadSpec, d time.Duration) string {
	what := map[string]string{
		sandbox.KindGHLContact:     "signed GHL ContactCreate webhooks (→ Aloware contact)",
		sandbox.KindTextingMessage: "signed texting message.received webhooks (→ GHL contact + note)",
	}[spec.Kind]
	return fmt.Sprintf("%s at %.0f/s for %s", what, spec.Rate, d.Round(time.Second))
}
