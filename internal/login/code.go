package login

// Sign-in by a one-time code sent by email, and what it shares with sign-in
// by link (link.go): where the message goes, when the next one may leave,
// and the marks kept in the flow.
//
//	GET /login/password?req=R
//	     │ POST /login/code/send {req, remember}   (also the "send again" button)
//	     ▼
//	code queued to the address typed at step 1 when it is a verified address
//	of the account, else to its primary verified address; for a flow without
//	an account nothing is sent but every page and answer is the same
//	     │
//	GET /login/code?req=R ── POST /login/code {req, code, remember}
//	     ├─ wrong ─────▶ same page, tries left (at most MaxCodeTries per code)
//	     ├─ dead ──────▶ same page, "ask for a new code" (expired, used, 5 wrong)
//	     ├─ throttled ─▶ 429, same page, when to try again (shared with passwords)
//	     └─ right ─────▶ h.complete (method "otp")
//
// The flow stays in state "password" until it completes, so the person can
// go back to the password at any time. Its Data keeps when the last code and
// link of the flow left (and, for flows without an account, the simulated
// tries), so the pages can say it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/notify"
	"campusid/internal/onetime"
	"campusid/internal/store"
	"campusid/internal/web"
)

// wayMarks are the login package's keys in a flow's Data.
type wayMarks struct {
	CodeSentAt int64  `json:"code_sent_at,omitempty"` // Unix ms of the flow's last code
	CodeTries  int    `json:"code_tries,omitempty"`   // flows without an account: wrong tries of the pretend code
	LinkSentAt int64  `json:"link_sent_at,omitempty"` // Unix ms of the flow's last link
	LinkUA     string `json:"link_user_agent,omitempty"`
}

func readWayMarks(f *store.LoginFlow) wayMarks {
	var m wayMarks
	json.Unmarshal([]byte(f.Data), &m) // a bad or foreign Data reads as no marks
	return m
}

// writeWayMarks stores m in f.Data, keeping the keys it does not know.
func writeWayMarks(f *store.LoginFlow, m wayMarks) {
	all := map[string]json.RawMessage{}
	json.Unmarshal([]byte(f.Data), &all)
	b, _ := json.Marshal(m)
	var mine map[string]json.RawMessage
	json.Unmarshal(b, &mine)
	for _, k := range []string{"code_sent_at", "code_tries", "link_sent_at", "link_user_agent"} {
		delete(all, k)
	}
	for k, v := range mine {
		all[k] = v
	}
	out, _ := json.Marshal(all)
	f.Data = string(out)
}

func wayMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// way is a way in by email: a code or a link.
type way struct {
	purpose string // store.PurposeLoginCode or store.PurposeLoginLink
	msg     string // message key prefix: "login_code" or "login_link"
	page    string // the page that says it was sent
	event   string // audit event of a send
}

var (
	byCode = way{purpose: store.PurposeLoginCode, msg: "login_code", page: "/login/code", event: "login.code_sent"}
	byLink = way{purpose: store.PurposeLoginLink, msg: "login_link", page: "/login/link/sent", event: "login.link_sent"}
)

func (wy way) sentAt(m wayMarks) time.Time {
	if wy.purpose == store.PurposeLoginCode {
		return wayMS(m.CodeSentAt)
	}
	return wayMS(m.LinkSentAt)
}

// wayAddress is the verified address the flow's codes and links go to: the
// one typed at step 1 when it is a verified address of the account, else the
// primary one, else the first verified one. ok is false when there is none
// (or no account).
func (h *Handler) wayAddress(ctx context.Context, f *store.LoginFlow) (store.Email, bool, error) {
	if f.AccountID == "" {
		return store.Email{}, false, nil
	}
	emails, err := h.DB.EmailsOf(ctx, f.AccountID)
	if err != nil {
		return store.Email{}, false, err
	}
	typed := strings.ToLower(strings.TrimSpace(f.Identifier))
	var primary, first *store.Email
	for i := range emails {
		e := &emails[i]
		if e.VerifiedAt == nil {
			continue
		}
		if e.Address == typed {
			return *e, true, nil
		}
		if e.Primary && primary == nil {
			primary = e
		}
		if first == nil {
			first = e
		}
	}
	if primary != nil {
		return *primary, true, nil
	}
	if first != nil {
		return *first, true, nil
	}
	return store.Email{}, false, nil
}

// wayShown is how the pages name where the message went: masked, and,
// when unknown accounts are hidden, never in a way that tells a known
// identifier from an unknown one.
func (h *Handler) wayShown(l i18n.Localizer, f *store.LoginFlow, dest store.Email, ok bool) string {
	typed := strings.ToLower(strings.TrimSpace(f.Identifier))
	typedAddr := strings.Contains(typed, "@")
	switch {
	case ok && (typedAddr || h.RevealUnknown):
		return wayMask(dest.Address)
	case typedAddr:
		return wayMask(typed)
	}
	return l.T("login_code.your_address")
}

// wayMask keeps the first character and the domain: j•••@univ.example.
func wayMask(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" {
		return "•••"
	}
	first := []rune(local)[0]
	return string(first) + "•••@" + domain
}

// wayClock says a time of day ("14:03"), with the date when it is not today.
func (h *Handler) wayClock(l i18n.Localizer, t time.Time) string {
	t, now := t.Local(), h.Now().Local()
	if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
		return t.Format("15:04")
	}
	if l.Lang == "en" {
		return t.Format("2 Jan 2006, 15:04")
	}
	return t.Format("02/01/2006 15:04")
}

// wayWait says a wait in seconds, or in minutes when longer.
func wayWait(l i18n.Localizer, d time.Duration) string {
	secs := int(math.Ceil(d.Seconds()))
	if secs <= 90 {
		return l.Seconds(secs)
	}
	return onetime.Human(l, time.Duration(math.Ceil(d.Minutes()))*time.Minute)
}

// wayResendWait is how long before the flow may ask for another message of wy:
// at most one per purpose and account every ResendInterval (for a flow
// without an account, per flow, so the answer looks the same).
func (h *Handler) wayResendWait(ctx context.Context, f *store.LoginFlow, wy way) (time.Duration, error) {
	var wait time.Duration
	if own := wy.sentAt(readWayMarks(f)); !own.IsZero() {
		wait = max(own.Add(h.Tokens.ResendInterval).Sub(h.Now()), 0)
	}
	_, acct, err := h.Tokens.LastSent(ctx, f.AccountID, wy.purpose)
	return max(wait, acct), err
}

// waySentData is the page that says a code or link left.
type waySentData struct {
	Req         string
	To          string // masked address
	SentAt      string // "14:03"
	Validity    string // "3 minutes"
	ResendAt    string // "" when a new one may be asked now
	Remember    bool
	Typed       string // the code typed, kept after an error
	PasswordURL string
}

func (h *Handler) waySentPage(ctx context.Context, f *store.LoginFlow, ref string, wy way) (waySentData, error) {
	l := i18n.Localizer{Lang: web.Info(ctx).Lang}
	dest, ok, err := h.wayAddress(ctx, f)
	if err != nil {
		return waySentData{}, err
	}
	validity := h.Tokens.CodeValidity()
	if wy.purpose == store.PurposeLoginLink {
		validity = h.Tokens.Validity[store.PurposeLoginLink]
	}
	d := waySentData{Req: ref, To: h.wayShown(l, f, dest, ok), SentAt: h.wayClock(l, wy.sentAt(readWayMarks(f))),
		Validity: onetime.Human(l, validity), Remember: f.Remember, PasswordURL: "/login/password?req=" + url.QueryEscape(ref)}
	wait, err := h.wayResendWait(ctx, f, wy)
	if err != nil {
		return d, err
	}
	cw, err := h.Tokens.ClientWait(ctx, web.Info(ctx).ClientIP)
	if err != nil {
		return d, err
	}
	if wait = max(wait, cw); wait > 0 {
		// Rounded up to the minute shown, so the button is live at that time.
		at := h.Now().Add(wait)
		if at.Truncate(time.Minute) != at {
			at = at.Truncate(time.Minute).Add(time.Minute)
		}
		d.ResendAt = h.wayClock(l, at)
	}
	return d, nil
}

// wayPasswordAgain shows the password step with a message.
func (h *Handler) wayPasswordAgain(w http.ResponseWriter, r *http.Request, f *store.LoginFlow, ref string, status int, msg string) error {
	d, err := h.passwordPage(r, f, ref, f.Remember)
	if err != nil {
		return err
	}
	return h.App.Render(w, r, status, "login_password", web.Page{Title: "login.password_title", Error: msg, Data: d})
}

// sendWay queues a code or a link for the flow (POST {req, remember}): from
// the password step, or "send again" on the page that says it left.
func (h *Handler) sendWay(w http.ResponseWriter, r *http.Request, wy way) error {
	web.NoReferrer(w)
	ctx := r.Context()
	ref := r.PostFormValue("req")
	f, err := h.flow(r, ref)
	if err != nil {
		return err
	}
	if f == nil {
		return web.Redirect(w, r, loginURL("", url.Values{"expired": {"1"}}))
	}
	f.Remember = r.PostFormValue("remember") == "on"
	info := web.Info(ctx)
	l := i18n.Localizer{Lang: info.Lang}
	now := h.Now()
	marks := readWayMarks(f)
	hasSent := !wy.sentAt(marks).IsZero()
	// A refusal shows the page of the message already sent, if any, else the password step.
	refuse := func(status int, msg string) error {
		if !hasSent {
			return h.wayPasswordAgain(w, r, f, ref, status, msg)
		}
		return h.showWaySent(w, r, f, ref, wy, status, msg, "")
	}

	dest, ok, err := h.wayAddress(ctx, f)
	if err != nil {
		return err
	}
	if f.AccountID != "" && !ok && h.RevealUnknown {
		return refuse(http.StatusUnprocessableEntity, l.T("login_code.no_address"))
	}
	// Too many messages from this client address.
	if wait, err := h.Tokens.ClientWait(ctx, info.ClientIP); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.send_throttled", AccountID: f.AccountID,
			Details: map[string]string{"purpose": wy.purpose, "wait_seconds": fmt.Sprint(int(math.Ceil(wait.Seconds())))}})
		return refuse(http.StatusTooManyRequests, l.T("login_code.client_wait", wayWait(l, wait)))
	}
	// At most one message a minute per purpose and account.
	prevSent, prevData := wy.sentAt(marks), f.Data
	tooSoon := func(wait time.Duration) error {
		f.Data = prevData
		web.RetryAfter(w, wait)
		last, _, err := h.Tokens.LastSent(ctx, f.AccountID, wy.purpose)
		if err != nil {
			return err
		}
		if prevSent.After(last) {
			last = prevSent
		}
		return refuse(http.StatusTooManyRequests, l.T(wy.msg+".too_soon", h.wayClock(l, last), wayWait(l, wait)))
	}
	if wait, err := h.wayResendWait(ctx, f, wy); err != nil {
		return err
	} else if wait > 0 {
		return tooSoon(wait)
	}

	if wy.purpose == store.PurposeLoginCode {
		marks.CodeSentAt, marks.CodeTries = now.UnixMilli(), 0
	} else {
		marks.LinkSentAt, marks.LinkUA = now.UnixMilli(), truncate(info.UserAgent, 300)
	}
	writeWayMarks(f, marks)
	details := map[string]string{"to": dest.Address}
	err = h.DB.InTx(ctx, func(tx *store.DB) error {
		if ok {
			a, err := tx.AccountByID(ctx, f.AccountID)
			if err != nil {
				return err
			}
			m := onetime.Message{Purpose: wy.purpose, Lang: info.Lang, To: dest.Address, AccountID: f.AccountID, EmailID: dest.ID,
				FlowID: f.ID, Path: "/login/link", Data: map[string]any{"Name": a.DisplayName, "When": wayWhen(l, now),
					"Device": notify.Device(l, info.UserAgent), "IP": info.ClientIP}}
			if wy.purpose == store.PurposeLoginCode {
				err = h.Tokens.SendCode(ctx, tx, m, info.ClientIP)
			} else {
				err = h.Tokens.SendLink(ctx, tx, m, info.ClientIP)
			}
			if err != nil {
				return err
			}
		} else {
			// Nothing to send, but the client address pays as for a message.
			pc := h.Tokens.PerClient
			pc.DB = tx
			if err := pc.Fail(ctx, info.ClientIP, now); err != nil {
				return err
			}
			details = map[string]string{"to": truncate(f.Identifier, 100), "sent": "false"}
			if f.AccountID == "" {
				details["reason"] = "unknown_account"
			} else {
				details["reason"] = "no_verified_address"
			}
		}
		if err := tx.UpdateLoginFlow(ctx, *f, StatePassword); err != nil {
			return err
		}
		return h.Audit.Record(ctx, tx, store.AuditEvent{Type: wy.event, AccountID: f.AccountID, Details: details})
	})
	var soon onetime.ErrTooSoon
	switch {
	case errors.As(err, &soon): // another request sent one in between
		return tooSoon(soon.Wait)
	case errors.Is(err, store.ErrNotFound): // the flow ended in between
		return web.Redirect(w, r, loginURL("", url.Values{"expired": {"1"}}))
	case err != nil:
		return err
	}
	return web.Redirect(w, r, wy.page+"?req="+url.QueryEscape(ref))
}

// wayWhen is the date and time of a request, for mails.
func wayWhen(l i18n.Localizer, t time.Time) string {
	if l.Lang == "en" {
		return t.Local().Format("2 January 2006 at 15:04")
	}
	return t.Local().Format("02/01/2006 à 15:04")
}

// showWaySent renders the page that says the flow's code or link left.
func (h *Handler) showWaySent(w http.ResponseWriter, r *http.Request, f *store.LoginFlow, ref string, wy way, status int, msg, typed string) error {
	d, err := h.waySentPage(r.Context(), f, ref, wy)
	if err != nil {
		return err
	}
	d.Typed = typed
	if wy.purpose == store.PurposeLoginCode {
		return h.App.Render(w, r, status, "login_code", web.Page{Title: "login_code.title", Error: msg, Data: d})
	}
	return h.App.Render(w, r, status, "login_link_sent", web.Page{Title: "login_link.sent_title", Error: msg, Data: d})
}

// showWay serves GET /login/code and /login/link/sent.
func (h *Handler) showWay(w http.ResponseWriter, r *http.Request, wy way) error {
	web.NoReferrer(w)
	ref := r.URL.Query().Get("req")
	f, err := h.flow(r, ref)
	if err != nil {
		return err
	}
	if f == nil {
		return web.Redirect(w, r, loginURL("", url.Values{"expired": {"1"}}))
	}
	if wy.sentAt(readWayMarks(f)).IsZero() { // nothing sent yet in this flow
		return web.Redirect(w, r, "/login/password?req="+url.QueryEscape(ref))
	}
	return h.showWaySent(w, r, f, ref, wy, http.StatusOK, "", "")
}

func (h *Handler) sendLoginCode(w http.ResponseWriter, r *http.Request) error {
	if !h.LoginCode {
		return web.NotFound()
	}
	return h.sendWay(w, r, byCode)
}

func (h *Handler) showLoginCode(w http.ResponseWriter, r *http.Request) error {
	if !h.LoginCode {
		return web.NotFound()
	}
	return h.showWay(w, r, byCode)
}

// guessKey is the per-account key of the guess limits, shared with the
// password step: an identifier without an account is limited like one.
func guessKey(f *store.LoginFlow) string {
	if f.AccountID == "" {
		return "unknown:" + strings.ToLower(f.Identifier)
	}
	return f.AccountID
}

// submitLoginCode checks a typed code (POST /login/code {req, code, remember}).
func (h *Handler) submitLoginCode(w http.ResponseWriter, r *http.Request) error {
	if !h.LoginCode {
		return web.NotFound()
	}
	web.NoReferrer(w)
	ctx := r.Context()
	ref := r.PostFormValue("req")
	f, err := h.flow(r, ref)
	if err != nil {
		return err
	}
	if f == nil {
		return web.Redirect(w, r, loginURL("", url.Values{"expired": {"1"}}))
	}
	f.Remember = r.PostFormValue("remember") == "on"
	typed := r.PostFormValue("code")
	if len(typed) > 40 {
		typed = typed[:40]
	}
	l := i18n.Localizer{Lang: web.Info(ctx).Lang}
	again := func(status int, msg string) error { return h.showWaySent(w, r, f, ref, byCode, status, msg, typed) }
	if strings.TrimSpace(typed) == "" {
		return again(http.StatusUnprocessableEntity, l.T("login_code.required"))
	}
	now := h.Now()
	ip := web.Info(ctx).ClientIP
	acctKey := guessKey(f)

	// The password step's limits: no comparison while a delay runs.
	waitAcct, err := h.PerAccount.Wait(ctx, acctKey, now)
	if err != nil {
		return err
	}
	waitIP, err := h.PerClient.Wait(ctx, ip, now)
	if err != nil {
		return err
	}
	if wait := max(waitAcct, waitIP); wait > 0 {
		h.count("throttled")
		secs := int(math.Ceil(wait.Seconds()))
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.throttled", AccountID: f.AccountID,
			Details: map[string]string{"wait_seconds": fmt.Sprint(secs), "method": "otp"}})
		return again(http.StatusTooManyRequests, l.T("login.too_many", l.Seconds(secs)))
	}

	left, err := h.checkLoginCode(ctx, f, typed)
	switch {
	case errors.Is(err, onetime.ErrCodeWrong):
		h.count("wrong_code")
		h.PerAccount.Fail(ctx, acctKey, now)
		h.PerClient.Fail(ctx, ip, now)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.code_failure", AccountID: f.AccountID,
			Details: map[string]string{"reason": "wrong", "tries_left": fmt.Sprint(left)}})
		h.padFailure(ctx)
		msg := l.T("login_code.wrong", left)
		if left == 1 {
			msg = l.T("login_code.wrong_last")
		}
		return again(http.StatusUnauthorized, msg)
	case errors.Is(err, onetime.ErrCodeDead):
		h.count("dead_code")
		// Counted like a wrong code: the try that kills a code is a real
		// comparison, and which request made it cannot be told apart.
		h.PerAccount.Fail(ctx, acctKey, now)
		h.PerClient.Fail(ctx, ip, now)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.code_failure", AccountID: f.AccountID,
			Details: map[string]string{"reason": "dead", "tries_left": "0"}})
		h.padFailure(ctx)
		typed = ""
		return again(http.StatusUnauthorized, l.T("login_code.dead"))
	case err != nil:
		return err
	}

	a, err := h.DB.AccountByID(ctx, f.AccountID)
	if err != nil {
		return err
	}
	if problem := account.SignInProblem(a, now); problem != "" {
		h.count(problem)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.refused", AccountID: a.ID, Details: map[string]string{"reason": problem}})
		return again(http.StatusForbidden, problemMessage(l, a, problem))
	}
	return h.complete(w, r, f, a, "otp", f.Remember)
}

// checkLoginCode compares the typed code with the flow's live codes; on
// ErrCodeWrong, left is the number of tries still allowed. A flow without an
// account has no code: it answers as if it had one that never matches,
// tries included.
func (h *Handler) checkLoginCode(ctx context.Context, f *store.LoginFlow, typed string) (left int, err error) {
	limit := h.Tokens.MaxCodeTries
	if f.AccountID == "" {
		m := readWayMarks(f)
		sent := wayMS(m.CodeSentAt)
		if sent.IsZero() || !h.Now().Before(sent.Add(h.Tokens.CodeValidity())) || m.CodeTries >= limit {
			return 0, onetime.ErrCodeDead
		}
		m.CodeTries++
		writeWayMarks(f, m)
		if err := h.DB.UpdateLoginFlow(ctx, *f, StatePassword); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
		if m.CodeTries >= limit {
			return 0, onetime.ErrCodeDead
		}
		return limit - m.CodeTries, onetime.ErrCodeWrong
	}
	_, err = h.Tokens.CheckCode(ctx, f.ID, store.PurposeLoginCode, typed)
	if !errors.Is(err, onetime.ErrCodeWrong) {
		return 0, err
	}
	live, lerr := h.DB.LiveTokens(ctx, f.ID, store.PurposeLoginCode, h.Now())
	if lerr != nil {
		return 0, lerr
	}
	for _, c := range live {
		left = max(left, limit-c.Tries)
	}
	return left, err
}
