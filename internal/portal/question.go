package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/notify"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// The secret question's section of the account page: shows the question
// (never the answer) and sets or changes it, the current password required.

func init() {
	notices["question_set"] = "question.done"
	notices["question_reset"] = "recoverq.done"
}

// questionSuggestions are the message keys of the suggested questions.
var questionSuggestions = []string{"question.suggest_1", "question.suggest_2", "question.suggest_3", "question.suggest_4"}

// questionView is the section's state on the account page.
type questionView struct {
	Set         bool
	Text        string
	SetOn       time.Time
	LockedUntil string // formatted, when recovery by question is locked now
	Suggestions []string

	// The form after a refused submission: what was typed (never the
	// answer or the password) and the error, tied to its field.
	Input      string
	Error      string
	ErrorField string // "question", "answer" or "current_password"
}

// load fills the stored state of the section.
func (h *Handler) loadQuestion(ctx context.Context, l i18n.Localizer, accountID string, v *questionView) error {
	q, err := h.DB.SecretQuestionOf(ctx, accountID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		v.Set, v.Text, v.SetOn = true, q.Question, q.UpdatedAt
		if q.LockedUntil != nil && h.Now().Before(*q.LockedUntil) {
			v.LockedUntil = formatWhen(l, *q.LockedUntil)
		}
	}
	for _, k := range questionSuggestions {
		v.Suggestions = append(v.Suggestions, l.T(k))
	}
	return nil
}

// setQuestion is POST /account/question {question, answer, current_password}.
func (h *Handler) setQuestion(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	ctx := r.Context()
	l := loc(r)
	question := r.PostFormValue("question")
	answer := r.PostFormValue("answer")
	current := r.PostFormValue("current_password")
	d := accountData{SignOutOthers: true}
	again := func(status int, field, msg string) error {
		d.Question = questionView{Input: question, Error: msg, ErrorField: field}
		return h.render(w, r, cur, status, web.Page{}, d)
	}
	if err := account.ValidateSecret(question, answer); err != nil {
		var ie *account.InputError
		if errors.As(err, &ie) {
			return again(http.StatusUnprocessableEntity, ie.Field, l.T(ie.Key))
		}
		return err
	}
	if current == "" {
		return again(http.StatusUnprocessableEntity, "current_password", l.T("question.password_required"))
	}
	// The current password is guessed here as on the password form: one counter.
	now := h.Now()
	if wait, err := h.PasswordTries.Wait(ctx, cur.Account.ID, now); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		return again(http.StatusTooManyRequests, "current_password", l.T("account.password_wait", l.WaitSeconds(wait)))
	}
	ok, err := h.Accounts.CheckPassword(ctx, cur.Account, current)
	if err != nil {
		return busyOr(err)
	}
	if !ok {
		h.PasswordTries.Fail(ctx, cur.Account.ID, now)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "question.change_failure", AccountID: cur.Account.ID,
			Details: map[string]string{"reason": "current_password"}})
		return again(http.StatusUnprocessableEntity, "current_password", l.T("account.current_wrong"))
	}
	h.PasswordTries.Reset(ctx, cur.Account.ID)
	sq, err := h.Accounts.HashSecret(ctx, question, answer)
	if err != nil {
		return busyOr(err)
	}
	sq.AccountID = cur.Account.ID
	_, qerr := h.DB.SecretQuestionOf(ctx, cur.Account.ID)
	first := errors.Is(qerr, store.ErrNotFound)
	err = h.DB.InTx(ctx, func(tx *store.DB) error {
		if err := tx.SetSecretQuestion(ctx, sq); err != nil {
			return err
		}
		if err := h.Audit.Record(ctx, tx, store.AuditEvent{Type: "question.change", AccountID: cur.Account.ID,
			Details: map[string]string{"first": fmt.Sprint(first)}}); err != nil {
			return err
		}
		return h.Notify.Send(ctx, tx, cur.Account, notify.QuestionChanged, web.Info(ctx).Lang, nil)
	})
	if err != nil {
		return err
	}
	return done(w, r, "question_set", "question")
}

// formatWhen is a date and time in the person's language.
func formatWhen(l i18n.Localizer, t time.Time) string {
	if l.Lang == "en" {
		return t.Local().Format("2 January 2006 at 15:04")
	}
	return t.Local().Format("02/01/2006 à 15:04")
}

// lockDuration says a lock's length ("1 heure", "30 minutes").
func lockDuration(l i18n.Localizer, d time.Duration) string {
	switch {
	case d == time.Hour:
		return l.T("duration.one_hour")
	case d >= time.Hour && d%time.Hour == 0:
		return l.T("duration.hours", int(d/time.Hour))
	case d.Round(time.Minute) == time.Minute:
		return l.T("duration.one_minute")
	}
	return l.T("duration.minutes", int(d.Round(time.Minute)/time.Minute))
}

// trimForAudit keeps audit details short.
func trimForAudit(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 100 {
		return s[:100]
	}
	return s
}
