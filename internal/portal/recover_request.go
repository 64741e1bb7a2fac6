package portal

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/onetime"
	"campusid/internal/store"
	"campusid/internal/web"
)

// recoverPage is the data of /recover: the request form, or what was sent.
type recoverPage struct {
	Email  string
	Method string // "link" or "code"
	Sent   bool
	// Localized lines of the "sent" state.
	SentText, ValidText, NextText string
}

func (h *Handler) showRecover(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	p := web.Page{Title: "recover.title", Data: recoverPage{Email: limitLen(q.Get("email"), 320), Method: "link"}}
	if q.Has("expired") {
		p.Notice = "recover.expired"
	}
	return h.App.Render(w, r, http.StatusOK, "recover", p)
}

func (h *Handler) submitRecover(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	l := loc(r)
	raw := limitLen(strings.TrimSpace(r.PostFormValue("email")), 320)
	method := "link"
	if r.PostFormValue("method") == "code" {
		method = "code"
	}
	d := recoverPage{Email: raw, Method: method}
	again := func(status int, msg string) error {
		return h.App.Render(w, r, status, "recover", web.Page{Title: "recover.title", Error: msg, Data: d})
	}
	addr, err := account.NormalizeEmail(raw)
	if err != nil {
		return again(http.StatusUnprocessableEntity, l.T("recover.email_invalid"))
	}
	d.Email = addr
	now := h.Now()
	if wait, err := h.clientWait(ctx); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "recover.throttled", Details: map[string]string{"limit": "client"}})
		return again(http.StatusTooManyRequests, l.T("recover.client_wait", waitText(l, now, wait)))
	}
	if last, wait, err := h.addressWait(ctx, "recover", addr); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "recover.throttled", Details: map[string]string{"limit": "address", "to": web.MaskEmail(addr)}})
		return again(http.StatusTooManyRequests, l.T("recover.too_soon", web.ClockTime(last), waitText(l, now, wait)))
	}

	a, e, err := h.lookupAddress(ctx, addr)
	outcome := "sent"
	switch {
	case errors.Is(err, store.ErrNotFound):
		a, outcome = store.Account{}, "unknown"
	case err != nil:
		return err
	default:
		if p := recoverProblem(a); p != "" {
			outcome = p
		}
	}
	audit := func(result string) {
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "recover.requested", AccountID: a.ID,
			Details: map[string]string{"method": method, "result": result, "to": web.MaskEmail(addr)}})
	}

	// With reveal_unknown_accounts, say at once what is wrong.
	if h.RevealUnknown && outcome != "sent" {
		if err := h.asked(ctx, "recover", addr); err != nil {
			return err
		}
		audit(outcome)
		switch outcome {
		case "unknown":
			return again(http.StatusUnprocessableEntity, l.T("recover.unknown"))
		case "disabled":
			return again(http.StatusForbidden, l.T("login.disabled"))
		}
		err := h.DB.InTx(ctx, func(tx *store.DB) error { return h.sendUnavailable(ctx, tx, a, addr, outcome) })
		if err != nil {
			return err
		}
		return again(http.StatusForbidden, h.unavailableText(l, outcome))
	}

	bind := ""
	if method == "code" {
		bind = h.browserBinding(w, r)
	}
	ref := ""
	err = h.DB.InTx(ctx, func(tx *store.DB) error {
		ref = ""
		lang := web.Info(ctx).Lang
		if outcome == "sent" {
			m := onetime.Message{Lang: lang, To: addr, AccountID: a.ID, EmailID: e.ID,
				Data: map[string]any{"Name": a.DisplayName, "Identifier": a.Identifier, "Tries": h.Tokens.MaxCodeTries}}
			if method == "link" {
				m.Purpose, m.Path = store.PurposeResetLink, "/recover/link"
				if err := h.Tokens.SendLink(ctx, tx, m, ""); err != nil {
					return err
				}
			} else {
				f, fref, err := newRecoverFlow(ctx, tx, now, a.ID, addr, bind, recoverData{EmailID: e.ID, SentAt: now.UnixMilli()})
				if err != nil {
					return err
				}
				ref, m.Purpose, m.FlowID = fref, store.PurposeResetCode, f.ID
				if err := h.Tokens.SendCode(ctx, tx, m, ""); err != nil {
					return err
				}
			}
			return h.Audit.Record(ctx, tx, store.AuditEvent{Type: "recover." + method + "_sent", AccountID: a.ID,
				Details: map[string]string{"to": web.MaskEmail(addr), "email_id": e.ID}})
		}
		if outcome == "temporary" || outcome == "provisioned" {
			if err := h.sendUnavailable(ctx, tx, a, addr, outcome); err != nil {
				return err
			}
		}
		if method == "code" {
			// The same flow and pages, with no code: every code fails.
			_, fref, err := newRecoverFlow(ctx, tx, now, "", addr, bind,
				recoverData{SentAt: now.UnixMilli(), Until: now.Add(h.Tokens.CodeValidity()).UnixMilli()})
			ref = fref
			return err
		}
		return nil
	})
	var soon onetime.ErrTooSoon
	if errors.As(err, &soon) {
		// Another address of the same account asked a moment ago.
		last, _, _ := h.Tokens.LastSent(ctx, a.ID, map[string]string{"link": store.PurposeResetLink, "code": store.PurposeResetCode}[method])
		audit("too_soon")
		web.RetryAfter(w, soon.Wait)
		return again(http.StatusTooManyRequests, l.T("recover.too_soon", web.ClockTime(last), waitText(l, now, soon.Wait)))
	}
	if err != nil {
		return err
	}
	if err := h.asked(ctx, "recover", addr); err != nil {
		return err
	}
	audit(outcome)
	if method == "code" {
		return web.Redirect(w, r, "/recover/code?flow="+ref)
	}
	d.Sent = true
	d.SentText = l.T("recover.sent_link", addr, web.ClockTime(now))
	d.ValidText = l.T("recover.valid_link", onetime.Human(l, h.Tokens.Validity[store.PurposeResetLink]))
	d.NextText = l.T("recover.next", web.ClockTimeUp(now.Add(h.ResendEvery)))
	return h.App.Render(w, r, http.StatusOK, "recover", web.Page{Title: "recover.title", Data: d})
}

// sendUnavailable tells a temporary or provisioned account, at the address
// that asked, why self-service reset is not for it and whom to ask (at
// most one such message per account every ResendEvery).
func (h *Handler) sendUnavailable(ctx context.Context, db *store.DB, a store.Account, addr, reason string) error {
	_, wait, err := h.Tokens.LastSent(ctx, a.ID, mailResetUnavailable)
	if err != nil || wait > 0 {
		return err
	}
	data := map[string]any{"Name": a.DisplayName, "Identifier": a.Identifier, "Address": addr, "Reason": reason,
		"SupportEmail": h.App.Support.Email, "SupportURL": h.App.Support.URL, "LoginURL": h.PublicURL + "/login"}
	if err := h.Mailer.Enqueue(ctx, db, mailResetUnavailable, web.Info(ctx).Lang, addr, a.ID, data); err != nil {
		return err
	}
	return h.Audit.Record(ctx, db, store.AuditEvent{Type: "recover.unavailable_sent", AccountID: a.ID,
		Details: map[string]string{"reason": reason, "to": web.MaskEmail(addr)}})
}

// unavailableText says on the page why self-service reset is refused.
func (h *Handler) unavailableText(l i18n.Localizer, reason string) string {
	if reason == "provisioned" {
		return l.T("recover.unavailable_provisioned")
	}
	s := h.App.Support
	switch {
	case s.Email != "" && s.URL != "":
		return l.T("recover.unavailable_temporary_both", s.Email, s.URL)
	case s.Email != "":
		return l.T("recover.unavailable_temporary_contact", s.Email)
	case s.URL != "":
		return l.T("recover.unavailable_temporary_contact", s.URL)
	}
	return l.T("recover.unavailable_temporary")
}

// newRecoverFlow creates a recovery flow in state email_code and returns it with its reference.
func newRecoverFlow(ctx context.Context, db *store.DB, now time.Time, accountID, addr, browserHash string, d recoverData) (store.LoginFlow, string, error) {
	ref := newRef()
	f := store.LoginFlow{ID: hashRef(ref), AccountID: accountID, Identifier: addr, State: recoverCode,
		Purpose: "recover", BrowserHash: browserHash, Data: d.encode(), CreatedAt: now, ExpiresAt: now.Add(recoverFlowLifetime)}
	if err := db.CreateLoginFlow(ctx, &f); err != nil {
		return f, "", err
	}
	return f, ref, nil
}

func limitLen(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
