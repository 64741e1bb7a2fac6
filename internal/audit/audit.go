// Package audit records security events twice: in the audit_events table
// (for `campusid audit` and the admin console) and in the structured log.
// Events carry no secrets.
package audit

import (
	"context"
	"log/slog"
	"time"
	"unicode/utf8"

	"campusid/internal/store"
	"campusid/internal/web"
)

// Log writes audit events.
type Log struct {
	DB  *store.DB
	Log *slog.Logger
	Now func() time.Time
}

// Record writes e through db (pass the transaction of the change it
// describes, or nil for the Log's own DB). Request metadata (client
// address, user agent, request id) is taken from ctx when e lacks it.
func (a *Log) Record(ctx context.Context, db *store.DB, e store.AuditEvent) error {
	if db == nil {
		db = a.DB
	}
	info := web.Info(ctx)
	if e.At.IsZero() {
		e.At = a.Now()
	}
	if e.IP == "" {
		e.IP = info.ClientIP
	}
	if e.UserAgent == "" {
		e.UserAgent = info.UserAgent
	}
	if e.RequestID == "" {
		e.RequestID = info.RequestID
	}
	if e.Actor == "" {
		e.Actor = "self"
	}
	// Details may quote what a caller sent (a service URL): bounded here,
	// once for every event.
	for k, v := range e.Details {
		e.Details[k] = bound(v)
	}
	attrs := []slog.Attr{slog.String("event", e.Type), slog.String("account_id", e.AccountID),
		slog.String("actor", e.Actor), slog.String("client_ip", e.IP), slog.String("request_id", e.RequestID)}
	for k, v := range e.Details {
		attrs = append(attrs, slog.String(k, v))
	}
	a.Log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
	return db.InsertAudit(ctx, e)
}

// maxDetail bounds one detail value, in bytes.
const maxDetail = 512

func bound(v string) string {
	if len(v) <= maxDetail {
		return v
	}
	cut := maxDetail
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "…"
}
