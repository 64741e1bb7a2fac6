package portal

// Who am I (/whoami): any address the person can read; when it is a
// verified address of an account, that address receives the account's
// identifier and its verified addresses, masked but for the one written to.
// The page says the same whether or not an account uses the address
// (unless RevealUnknown). One message per address and per account every
// ResendEvery; messages per client address are limited with the others
// (onetime's PerClient).

import (
	"errors"
	"net/http"
	"strings"

	"campusid/internal/account"
	"campusid/internal/store"
	"campusid/internal/web"
)

// whoamiPage is the data of /whoami.
type whoamiPage struct {
	Email              string
	Sent               bool
	SentText, NextText string
}

// whoamiAddress is one line of the whoami mail.
type whoamiAddress struct {
	Address string // masked unless This
	This    bool   // the address the message is written to
}

func (h *Handler) showWhoami(w http.ResponseWriter, r *http.Request) error {
	return h.App.Render(w, r, http.StatusOK, "whoami", web.Page{Title: "whoami.title",
		Data: whoamiPage{Email: limitLen(r.URL.Query().Get("email"), 320)}})
}

func (h *Handler) submitWhoami(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	l := loc(r)
	d := whoamiPage{Email: limitLen(strings.TrimSpace(r.PostFormValue("email")), 320)}
	again := func(status int, msg string) error {
		return h.App.Render(w, r, status, "whoami", web.Page{Title: "whoami.title", Error: msg, Data: d})
	}
	addr, err := account.NormalizeEmail(d.Email)
	if err != nil {
		return again(http.StatusUnprocessableEntity, l.T("recover.email_invalid"))
	}
	d.Email = addr
	now := h.Now()
	if wait, err := h.clientWait(ctx); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "whoami.throttled", Details: map[string]string{"limit": "client"}})
		return again(http.StatusTooManyRequests, l.T("recover.client_wait", waitText(l, now, wait)))
	}
	if last, wait, err := h.addressWait(ctx, "whoami", addr); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "whoami.throttled", Details: map[string]string{"limit": "address", "to": web.MaskEmail(addr)}})
		return again(http.StatusTooManyRequests, l.T("whoami.too_soon", web.ClockTime(last), waitText(l, now, wait)))
	}
	a, _, err := h.lookupAddress(ctx, addr)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if known {
		// Another address of the same account may have asked a moment ago.
		last, wait, err := h.Tokens.LastSent(ctx, a.ID, mailWhoami)
		if err != nil {
			return err
		}
		if wait > 0 {
			web.RetryAfter(w, wait)
			h.Audit.Record(ctx, nil, store.AuditEvent{Type: "whoami.throttled", AccountID: a.ID, Details: map[string]string{"limit": "account"}})
			return again(http.StatusTooManyRequests, l.T("whoami.too_soon", web.ClockTime(last), waitText(l, now, wait)))
		}
		emails, err := h.DB.EmailsOf(ctx, a.ID)
		if err != nil {
			return err
		}
		var list []whoamiAddress
		for _, e := range emails {
			if e.VerifiedAt == nil {
				continue
			}
			if e.Address == addr {
				list = append(list, whoamiAddress{Address: e.Address, This: true})
			} else {
				list = append(list, whoamiAddress{Address: web.MaskEmail(e.Address)})
			}
		}
		data := map[string]any{"Name": a.DisplayName, "Identifier": a.Identifier, "Address": addr, "Addresses": list,
			"LoginURL": h.PublicURL + "/login", "RecoverURL": h.PublicURL + "/recover"}
		err = h.DB.InTx(ctx, func(tx *store.DB) error {
			if err := h.Mailer.Enqueue(ctx, tx, mailWhoami, web.Info(ctx).Lang, addr, a.ID, data); err != nil {
				return err
			}
			return h.Audit.Record(ctx, tx, store.AuditEvent{Type: "whoami.sent", AccountID: a.ID,
				Details: map[string]string{"to": web.MaskEmail(addr)}})
		})
		if err != nil {
			return err
		}
	} else {
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "whoami.unknown", Details: map[string]string{"to": web.MaskEmail(addr)}})
	}
	if err := h.asked(ctx, "whoami", addr); err != nil {
		return err
	}
	if !known && h.RevealUnknown {
		return again(http.StatusUnprocessableEntity, l.T("whoami.unknown"))
	}
	d.Sent = true
	d.SentText = l.T("whoami.sent", addr, web.ClockTime(now))
	d.NextText = l.T("whoami.next", web.ClockTimeUp(now.Add(h.ResendEvery)))
	return h.App.Render(w, r, http.StatusOK, "whoami", web.Page{Title: "whoami.title", Data: d})
}
