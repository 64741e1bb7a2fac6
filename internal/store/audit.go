package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditEvent is one security event. Details never hold secrets.
type AuditEvent struct {
	ID        int64
	At        time.Time
	Type      string // e.g. "login.success", "password.change"
	AccountID string
	Actor     string // who did it: "self", "cli", "admin:<id>", "system"
	IP        string
	UserAgent string
	RequestID string
	Details   map[string]string
}

// InsertAudit appends an event.
func (db *DB) InsertAudit(ctx context.Context, e AuditEvent) error {
	details, err := json.Marshal(e.Details)
	if err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	if e.Details == nil {
		details = []byte("{}")
	}
	_, err = db.exec(ctx, `INSERT INTO audit_events (at, type, account_id, actor, ip, user_agent, request_id, details)
		VALUES (?,?,?,?,?,?,?,?)`, ms(e.At), e.Type, e.AccountID, e.Actor, e.IP, e.UserAgent, e.RequestID, string(details))
	if err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	return nil
}

// AuditFilter narrows ListAudit.
type AuditFilter struct {
	AccountID string
	Type      string // exact type, or a prefix ending in "." ("login.")
	Since     time.Time
	Limit     int
}

// ListAudit returns events, newest first.
func (db *DB) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	q := `SELECT id, at, type, account_id, actor, ip, user_agent, request_id, details FROM audit_events WHERE at >= ?`
	args := []any{ms(f.Since)}
	if f.AccountID != "" {
		q += ` AND account_id = ?`
		args = append(args, f.AccountID)
	}
	if f.Type != "" {
		if f.Type[len(f.Type)-1] == '.' {
			q += ` AND type LIKE ?`
			args = append(args, f.Type+"%")
		} else {
			q += ` AND type = ?`
			args = append(args, f.Type)
		}
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var (
			e       AuditEvent
			at      int64
			details string
		)
		if err := rows.Scan(&e.ID, &at, &e.Type, &e.AccountID, &e.Actor, &e.IP, &e.UserAgent, &e.RequestID, &details); err != nil {
			return nil, err
		}
		e.At = fromMS(at)
		json.Unmarshal([]byte(details), &e.Details)
		out = append(out, e)
	}
	return out, rows.Err()
}
