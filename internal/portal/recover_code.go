package portal

import (
	"errors"
	"net/http"
	"time"
	"unicode"

	"campusid/internal/i18n"
	"campusid/internal/onetime"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// recoverCodePage is the data of /recover/code.
type recoverCodePage struct {
	Ref                           string
	SentText, ValidText, NextText string
	CodeError                     bool
}

// codePage fills the page of flow f (reference ref).
func (h *Handler) codePage(l i18n.Localizer, f store.LoginFlow, ref string) recoverCodePage {
	now := h.Now()
	sent := time.UnixMilli(readRecoverData(f).SentAt)
	d := recoverCodePage{Ref: ref,
		SentText:  l.T("recover.sent_code", f.Identifier, web.ClockTime(sent)),
		ValidText: l.T("recover.valid_code", onetime.Human(l, h.Tokens.CodeValidity()), h.Tokens.MaxCodeTries),
		NextText:  l.T("recover.next_code_now"),
	}
	if next := sent.Add(h.ResendEvery); next.After(now) {
		d.NextText = l.T("recover.next_code", web.ClockTimeUp(next))
	}
	return d
}

func (h *Handler) showRecoverCode(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ref := r.URL.Query().Get("flow")
	f, err := h.recoverFlow(r, ref, recoverCode)
	if err != nil {
		return h.flowFailed(w, r, err)
	}
	p := web.Page{Title: "recover.code_title", Data: h.codePage(loc(r), f, ref)}
	if r.URL.Query().Has("resent") {
		p.Notice = "recover.code_resent"
	}
	return h.App.Render(w, r, http.StatusOK, "recover_code", p)
}

// guessKey is the per-account key of wrong codes: the account, or for a
// silent flow the address typed (so both behave alike).
func guessKey(f store.LoginFlow) string {
	if f.AccountID != "" {
		return "acct:" + f.AccountID
	}
	return "to:" + session.HashToken(f.Identifier)
}

func (h *Handler) submitRecoverCode(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ctx := r.Context()
	l := loc(r)
	ref := r.PostFormValue("flow")
	f, err := h.recoverFlow(r, ref, recoverCode)
	if err != nil {
		return h.flowFailed(w, r, err)
	}
	again := func(status int, msg string) error {
		d := h.codePage(l, f, ref)
		d.CodeError = true
		return h.App.Render(w, r, status, "recover_code", web.Page{Title: "recover.code_title", Error: msg, Data: d})
	}
	typed := r.PostFormValue("code")
	digits := 0
	for _, c := range typed {
		if unicode.IsDigit(c) {
			digits++
		}
	}
	if digits != 6 || len(typed) > 40 {
		return again(http.StatusUnprocessableEntity, l.T("recover.code_format"))
	}
	now := h.Now()
	ip := web.Info(ctx).ClientIP
	key := guessKey(f)
	wc, err := h.CodeGuessesClient.Wait(ctx, ip, now)
	if err != nil {
		return err
	}
	wa, err := h.CodeGuessesAccount.Wait(ctx, key, now)
	if err != nil {
		return err
	}
	if wait := max(wc, wa); wait > 0 {
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "recover.throttled", AccountID: f.AccountID,
			Details: map[string]string{"limit": "code_guesses"}})
		return again(http.StatusTooManyRequests, l.T("recover.code_wait", l.WaitSeconds(wait), web.ClockTimeUp(now.Add(wait))))
	}

	var result error
	if f.AccountID == "" {
		// A silent flow: act out a code that never matches.
		d := readRecoverData(f)
		d.Tries++
		result = onetime.ErrCodeWrong
		if d.Tries >= h.Tokens.MaxCodeTries || !now.Before(time.UnixMilli(d.Until)) {
			result = onetime.ErrCodeDead
		}
		f.Data = d.encode()
		if err := h.DB.UpdateLoginFlow(ctx, f, recoverCode); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	} else {
		_, result = h.Tokens.CheckCode(ctx, f.ID, store.PurposeResetCode, typed)
	}
	switch {
	case errors.Is(result, onetime.ErrCodeWrong), errors.Is(result, onetime.ErrCodeDead):
		h.CodeGuessesClient.Fail(ctx, ip, now)
		h.CodeGuessesAccount.Fail(ctx, key, now)
		dead := errors.Is(result, onetime.ErrCodeDead)
		reason := "wrong"
		if dead {
			reason = "dead"
		}
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "recover.code_failure", AccountID: f.AccountID,
			Details: map[string]string{"reason": reason}})
		if dead {
			return again(http.StatusUnprocessableEntity, l.T("recover.code_dead"))
		}
		return again(http.StatusUnprocessableEntity, l.T("recover.code_wrong"))
	case result != nil:
		return result
	}
	h.CodeGuessesAccount.Reset(ctx, key)
	f.State = recoverPassword
	if err := h.DB.UpdateLoginFlow(ctx, f, recoverCode); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return h.flowFailed(w, r, errRecoverExpired)
		}
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "recover.code_verified", AccountID: f.AccountID})
	return web.Redirect(w, r, "/recover/password?flow="+ref)
}

// resendRecoverCode sends another code in the same flow; the earlier one
// keeps working.
func (h *Handler) resendRecoverCode(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ctx := r.Context()
	l := loc(r)
	ref := r.PostFormValue("flow")
	f, err := h.recoverFlow(r, ref, recoverCode)
	if err != nil {
		return h.flowFailed(w, r, err)
	}
	again := func(status int, msg string) error {
		return h.App.Render(w, r, status, "recover_code", web.Page{Title: "recover.code_title", Error: msg, Data: h.codePage(l, f, ref)})
	}
	now := h.Now()
	addr := f.Identifier
	if wait, err := h.clientWait(ctx); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		return again(http.StatusTooManyRequests, l.T("recover.client_wait", waitText(l, now, wait)))
	}
	if last, wait, err := h.addressWait(ctx, "recover", addr); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		return again(http.StatusTooManyRequests, l.T("recover.too_soon", web.ClockTime(last), waitText(l, now, wait)))
	}
	d := readRecoverData(f)
	send := f.AccountID != ""
	var a store.Account
	if send {
		if a, err = h.DB.AccountByID(ctx, f.AccountID); err != nil {
			return err
		}
		send = recoverProblem(a) == ""
	}
	d.SentAt = now.UnixMilli()
	if f.AccountID == "" {
		d.Tries, d.Until = 0, now.Add(h.Tokens.CodeValidity()).UnixMilli()
	}
	f.Data = d.encode()
	err = h.DB.InTx(ctx, func(tx *store.DB) error {
		if err := tx.UpdateLoginFlow(ctx, f, recoverCode); err != nil {
			return err
		}
		if !send {
			return nil
		}
		m := onetime.Message{Purpose: store.PurposeResetCode, Lang: web.Info(ctx).Lang, To: addr, AccountID: a.ID,
			EmailID: d.EmailID, FlowID: f.ID, Data: map[string]any{"Name": a.DisplayName, "Identifier": a.Identifier, "Tries": h.Tokens.MaxCodeTries}}
		if err := h.Tokens.SendCode(ctx, tx, m, ""); err != nil {
			return err
		}
		return h.Audit.Record(ctx, tx, store.AuditEvent{Type: "recover.code_sent", AccountID: a.ID,
			Details: map[string]string{"to": web.MaskEmail(addr), "email_id": d.EmailID, "resend": "true"}})
	})
	var soon onetime.ErrTooSoon
	if errors.As(err, &soon) {
		last, _, _ := h.Tokens.LastSent(ctx, a.ID, store.PurposeResetCode)
		web.RetryAfter(w, soon.Wait)
		return again(http.StatusTooManyRequests, l.T("recover.too_soon", web.ClockTime(last), waitText(l, now, soon.Wait)))
	}
	if errors.Is(err, store.ErrNotFound) {
		return h.flowFailed(w, r, errRecoverExpired)
	}
	if err != nil {
		return err
	}
	if err := h.asked(ctx, "recover", addr); err != nil {
		return err
	}
	return web.Redirect(w, r, "/recover/code?flow="+ref+"&resent=1")
}
