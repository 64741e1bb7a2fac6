package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"campusid/internal/store"
)

func runAudit(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "audit", "audit [--account ID|IDENTIFIER|EMAIL] [--type TYPE] [--since 24h] [--limit N] [--json]",
		`List security events, newest first. --type takes an exact type (login.failure) or a
prefix ending in a dot (login.).`)
	path := fs.String("config", "", "configuration file (YAML)")
	acct := fs.String("account", "", "only this account")
	typ := fs.String("type", "", "only this event type, or prefix ending in '.'")
	since := fs.Duration("since", 0, "only events newer than this (e.g. 24h); 0 = all")
	limit := fs.Int("limit", 50, "how many events at most")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	db, err := openCLI(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	f := store.AuditFilter{Type: *typ, Limit: *limit}
	if *since > 0 {
		f.Since = e.now().Add(-*since)
	}
	if *acct != "" {
		a, err := findAccount(ctx, db, *acct)
		if err != nil {
			return err
		}
		f.AccountID = a.ID
	}
	events, err := db.ListAudit(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, ev := range events {
			if err := enc.Encode(ev); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tACCOUNT\tACTOR\tCLIENT\tDETAILS")
	for _, ev := range events {
		keys := make([]string, 0, len(ev.Details))
		for k := range ev.Details {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var d []string
		for _, k := range keys {
			d = append(d, k+"="+ev.Details[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.At.Local().Format(time.DateTime), ev.Type, ev.AccountID, ev.Actor, ev.IP, strings.Join(d, " "))
	}
	return tw.Flush()
}
