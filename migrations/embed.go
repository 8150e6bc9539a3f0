// Package migrations embeds the numbered SQL migrations so that the binary
// carries its own schema; internal/store applies them with goose.
package migrations

import "embed"

// FS holds every *.sql migration, applied in filename order.
//
//go:embed *.sql
var FS embed.FS
