// Package chaos is the fault-injection suite: its tests run the real
// df-middleware binary against a real PostgreSQL and the sandbox upstreams
// under steady webhook load, inject one fault per scenario (SIGKILL, a
// PostgreSQL restart, upstream 500s and 429s, a poison event, replica loss,
// slow and oversized clients), and check one invariant: every acknowledged
// event is stored once and ends done, skipped, or visibly error /
// quarantined, and none is processed twice.
//
// `go test ./chaos` (and so `make test`) runs every scenario in a reduced
// form; DF_CHAOS=full (`make chaos`) runs them at full size and length.
// Each scenario writes its figures as a Result (JSON) into DF_CHAOS_OUT;
// cmd/chaosreport renders them into docs/reliability.md.
//
// This file holds what the tests and the report share: the Result shape and
// the description of each scenario.
package chaos

import "time"

// Result is the measured outcome of one scenario run.
type Result struct {
	Scenario  string    `json:"scenario"` // a Scenarios name
	Mode      string    `json:"mode"`     // "reduced" or "full"
	Machine   string    `json:"machine"`  // OS/arch and CPUs of the machine it ran on
	Started   time.Time `json:"started"`
	DurationS float64   `json:"duration_s"`
	Load      string    `json:"load"`  // what the load driver sent
	Fault     string    `json:"fault"` // what was injected, when
	// Settings are the environment the service ran with beyond the usual
	// sandbox wiring (retry, lease, breaker settings).
	Settings map[string]string `json:"settings,omitempty"`

	Sent         int `json:"sent"`
	Acknowledged int `json:"acknowledged"` // 2xx: the service promised the event is durable
	// Refused counts the requests not acknowledged, by HTTP status or by
	// "connection error" / "timeout".
	Refused map[string]int `json:"refused,omitempty"`
	// RefusedButStored counts refused requests whose event is in the table
	// anyway, by status: harmless for a 503 (a redelivery is a duplicate),
	// a bug for a 500.
	RefusedButStored map[string]int `json:"refused_but_stored,omitempty"`
	Lost             int            `json:"lost"`       // acknowledged, not in the table
	Duplicated       int            `json:"duplicated"` // effect or successful sync recorded more than once
	// RedoneAfterCrash counts events whose effect was applied twice because
	// the process running them was killed after the upstream write and
	// before it recorded the outcome: the rescued attempt repeats an
	// idempotent write. Not counted as Duplicated.
	RedoneAfterCrash int `json:"redone_after_crash"`
	// IdempotentRewrites counts events whose idempotent upstream write (the
	// Aloware contact upsert) reached the upstream more than once because an
	// attempt failed after the write (e.g. the database went away before
	// the mapping was recorded) and was retried. The contact is written,
	// not duplicated. Reported, not counted as Duplicated.
	IdempotentRewrites int `json:"idempotent_rewrites"`
	// Stuck counts events still pending or processing when the wait for
	// the queue to settle gave up.
	Stuck int `json:"stuck"`
	// Ended counts the stored events of the run by final status.
	Ended map[string]int `json:"ended"`

	// RecoveryFirstAckS: seconds from the end of the fault to the first
	// acknowledged request after it; RecoveryDrainS: to the moment no
	// event of the run was pending or processing any more.
	RecoveryFirstAckS *float64 `json:"recovery_first_ack_s,omitempty"`
	RecoveryDrainS    *float64 `json:"recovery_drain_s,omitempty"`

	IntakeLatencyMS  Latency `json:"intake_latency_ms"`  // acknowledged requests, as the client saw them
	ProcessLatencyMS Latency `json:"process_latency_ms"` // received_at → processed_at of the events done

	Observations []Observation `json:"observations,omitempty"`
	Problems     []string      `json:"problems,omitempty"` // invariant violations and failed expectations
	Pass         bool          `json:"pass"`
}

// Latency summarises durations in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Observation is one scenario-specific figure ("leader takeover", "breaker
// opened after").
type Observation struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Scenario describes one scenario for the report.
type Scenario struct {
	Name      string
	Title     string
	Does      string // what the test does
	Invariant string // what it checks beyond the common invariant
}

// CommonInvariant is checked after every scenario.
const CommonInvariant = "Every acknowledged (2xx) webhook has exactly one `webhook_events` row (its dedupe key), " +
	"and once the queue has settled (bounded wait) it is `done`, `skipped`, `error` or `quarantined`, never " +
	"`pending` or `processing`; a done event had its upstream effect. None is processed twice: no event has more " +
	"than one successful `sync_log` row per direction, no phone number two Aloware contacts, no message two GHL notes " +
	"(only events a killed process was running may repeat their write; an idempotent Aloware upsert repeated by a " +
	"retry is counted apart). A refused request (5xx, connection error) need not be stored; one that was is " +
	"reported, and a stored 500 fails the scenario."

// Scenarios lists the scenarios in report order.
var Scenarios = []Scenario{
	{
		Name:  "sigkill",
		Title: "SIGKILL of the service mid-load, restart",
		Does: "Signed GHL ContactCreate webhooks at a steady rate (each becomes an Aloware contact in the sandbox, " +
			"which answers after 100 ms so that events are in flight). A third into the load the service is " +
			"killed with SIGKILL (no shutdown of any kind); the events it held leases on are noted; after a pause " +
			"it is started again under another instance id while the load continues.",
		Invariant: "Nothing acknowledged before the kill is lost; the events the dead process held are rescued " +
			"when their lease expires and end done; only those may have repeated their (idempotent) upstream write.",
	},
	{
		Name:  "postgres",
		Title: "PostgreSQL restarted mid-load",
		Does: "The service runs on a private PostgreSQL cluster (testdb.StartCluster). Under GHL ContactCreate load " +
			"the cluster is stopped (pg_ctl stop -m fast), kept down, and started again; the service is not restarted. " +
			"/health is polled throughout.",
		Invariant: "While the database is down intake answers 503 promptly (no hang, no 500) and /health answers 503 " +
			"with the database down; afterwards intake and processing recover by themselves and health is ok again.",
	},
	{
		Name:  "upstream",
		Title: "GHL 500s, then a 429 storm",
		Does: "Signed texting message.received webhooks (each writes a contact and a note to GHL). The sandbox's GHL " +
			"answers every call with 500 for a while, then 80 % of calls with 429 (Retry-After: 1), then recovers. " +
			"/metrics is scraped several times a second for upstream_breaker_state{upstream=\"ghl\"}.",
		Invariant: "Events back off and retry (no attempt budget exhausted), the GHL breaker opens during the 500s " +
			"and is closed again after recovery, and every event ends done with exactly one note in GHL.",
	},
	{
		Name:  "poison",
		Title: "A poison event that always fails",
		Does: "GHL ContactCreate load with DF_MAX_ATTEMPTS=3; the sandbox's Aloware answers 500 to every call that " +
			"carries one poison phone number (a fault matched on the request), and a few events with that number are " +
			"sent among the others.",
		Invariant: "Each poison event ends `error` after exactly DF_MAX_ATTEMPTS attempts with the reason recorded; " +
			"every other event ends done and is not held up (processing latency stays low).",
	},
	{
		Name:  "replicas",
		Title: "Three replicas on one database, leader killed",
		Does: "Three serve processes share one database and one sandbox (Aloware answers after 100 ms); the load is " +
			"spread over them round-robin. Once one replica has logged \"became leader\", it is taken out of the " +
			"rotation and killed with SIGKILL.",
		Invariant: "Exactly one replica leads at a time; another takes over within a bound; the dead leader's " +
			"leases are rescued by the new leader (a leader duty) so its in-flight events still finish; each event is " +
			"processed once (re-runs only for those in-flight events).",
	},
	{
		Name:  "slowclients",
		Title: "Slow clients and oversized bodies",
		Does: "Under GHL ContactCreate load, slowloris connections dribble header lines one a second, other " +
			"connections send complete headers and then a body at a few bytes a second, and clients post 2 MiB " +
			"bodies and 100 KiB headers.",
		Invariant: "The listener keeps serving: normal requests are answered in bounded time with no errors; " +
			"header dribblers are cut at the read-header timeout (5 s), body dribblers at the read timeout (30 s), " +
			"oversized bodies get 413 and oversized headers 431.",
	},
}
