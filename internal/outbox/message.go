package outbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"
)

// Message is one rendered email.
type Message struct {
	ID      string // stable id of the outbox row; used to build the Message-ID header so retries are recognisable
	To      string
	Subject string
	Text    string // text/plain body
	HTML    string // text/html body ("" = text only)
	Lang    string // "fr" or "en": Content-Language header
}

// Sender delivers one message. It is a real seam with two implementations:
// SMTPSender here and the development mailbox.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrPermanent marks failures that retrying will not fix (SMTP 5xx on
// MAIL/RCPT/DATA, invalid address, a message that cannot be composed); test
// with errors.Is. Every other failure (connection refused, timeouts, 4xx,
// TLS and authentication problems) is temporary.
var ErrPermanent = errors.New("outbox: permanent delivery failure")

// maxHeaderLine is the length at which header fields are folded (RFC 5322
// recommends lines of at most 78 characters).
const maxHeaderLine = 78

// Compose builds the RFC 5322 message bytes, with CRLF line endings:
// From, To, Subject (RFC 2047 encoded when not ASCII), Date, Message-ID
// (<ID@from-domain>), MIME-Version, Content-Language, Auto-Submitted and
// X-Auto-Response-Suppress, then a quoted-printable text/plain body, or a
// multipart/alternative body with text/plain and text/html parts when HTML
// is set.
//
// Every error wraps ErrPermanent: the same message would fail the same way
// on every retry. CR or LF in To or Subject is refused, so no header can be
// injected. An empty ID gets a random one (the Message-ID is then not stable
// across retries).
func Compose(from *mail.Address, m Message, now time.Time) ([]byte, error) {
	_, data, err := compose(from, m, now)
	return data, err
}

// compose is Compose that also returns the envelope recipient (the bare
// address of m.To).
func compose(from *mail.Address, m Message, now time.Time) (rcpt string, data []byte, err error) {
	if from == nil {
		return "", nil, fmt.Errorf("%w: compose: no From address", ErrPermanent)
	}
	to, err := parseRecipient(m.To)
	if err != nil {
		return "", nil, err
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return "", nil, fmt.Errorf("%w: compose: subject contains a line break", ErrPermanent)
	}
	for _, f := range []struct{ name, value string }{{"subject", m.Subject}, {"text", m.Text}, {"html", m.HTML}} {
		if !utf8.ValidString(f.value) {
			return "", nil, fmt.Errorf("%w: compose: %s is not valid UTF-8", ErrPermanent, f.name)
		}
	}
	if m.Text == "" {
		return "", nil, fmt.Errorf("%w: compose: empty text body", ErrPermanent)
	}
	if m.Lang != "" && !isLanguageTag(m.Lang) {
		return "", nil, fmt.Errorf("%w: compose: language %q is not a language tag", ErrPermanent, m.Lang)
	}
	id := m.ID
	if id == "" {
		id = rand.Text()
	} else if !isIDLeft(id) {
		return "", nil, fmt.Errorf("%w: compose: id %q cannot be used in a Message-ID", ErrPermanent, m.ID)
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]

	var b bytes.Buffer
	writeHeader(&b, "From", from.String())
	writeHeader(&b, "To", to.String())
	writeHeader(&b, "Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	writeHeader(&b, "Date", now.Format(time.RFC1123Z))
	writeHeader(&b, "Message-ID", "<"+id+"@"+domain+">")
	writeHeader(&b, "MIME-Version", "1.0")
	if m.Lang != "" {
		writeHeader(&b, "Content-Language", m.Lang)
	}
	// RFC 3834: an automatic message; the second one stops Exchange
	// out-of-office and read receipts.
	writeHeader(&b, "Auto-Submitted", "auto-generated")
	writeHeader(&b, "X-Auto-Response-Suppress", "All")

	if m.HTML == "" {
		writeHeader(&b, "Content-Type", "text/plain; charset=utf-8")
		writeHeader(&b, "Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, m.Text); err != nil {
			return "", nil, fmt.Errorf("outbox: compose: %w", err)
		}
		// End on a line break, as SMTP would add anyway; readers drop it.
		b.WriteString("\r\n")
		return to.Address, b.Bytes(), nil
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	writeHeader(&b, "Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
	b.WriteString("\r\n")
	// Simplest part first, the preferred one last (RFC 2046 5.1.4).
	for _, p := range []struct{ typ, content string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return "", nil, fmt.Errorf("outbox: compose: %w", err)
		}
		if err := writeQP(w, p.content); err != nil {
			return "", nil, fmt.Errorf("outbox: compose: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return "", nil, fmt.Errorf("outbox: compose: %w", err)
	}
	b.Write(body.Bytes())
	return to.Address, b.Bytes(), nil
}

// parseRecipient parses To ("addr" or "Name <addr>"). The address itself
// must be ASCII: sending to internationalized addresses would need
// SMTPUTF8, which campusid does not use.
func parseRecipient(s string) (*mail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: compose: recipient contains a line break", ErrPermanent)
	}
	if s == "" {
		return nil, fmt.Errorf("%w: compose: no recipient", ErrPermanent)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%w: compose: recipient %q: %w", ErrPermanent, s, err)
	}
	if !isASCII(a.Address) {
		return nil, fmt.Errorf("%w: compose: recipient %q: non-ASCII addresses are not supported", ErrPermanent, s)
	}
	return a, nil
}

// writeHeader writes "Name: value" and CRLF, folding the value at spaces so
// that lines stay within maxHeaderLine where possible. It only ever folds
// before a non-empty word, so no continuation line is blank. value must not
// contain CR or LF.
func writeHeader(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteByte(':')
	lineLen := len(name) + 1
	hasWord := false // the current line holds a word of the value
	for _, word := range strings.Split(value, " ") {
		if word != "" && hasWord && lineLen+1+len(word) > maxHeaderLine {
			b.WriteString("\r\n")
			lineLen = 0
			hasWord = false
		}
		b.WriteByte(' ')
		b.WriteString(word)
		lineLen += 1 + len(word)
		hasWord = hasWord || word != ""
	}
	b.WriteString("\r\n")
}

// writeQP writes s quoted-printable encoded. Line breaks (LF, CRLF or a lone
// CR) become hard CRLF line breaks.
func writeQP(w io.Writer, s string) error {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	qp := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qp, s); err != nil {
		return err
	}
	return qp.Close()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// isLanguageTag accepts the shape of a BCP 47 tag ("fr", "en", "fr-CA").
func isLanguageTag(s string) bool {
	if len(s) > 35 {
		return false
	}
	for _, sub := range strings.Split(s, "-") {
		if sub == "" || len(sub) > 8 {
			return false
		}
		for _, c := range sub {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// isIDLeft reports whether s can be the left part of a Message-ID: a
// dot-atom-text of RFC 5322 (atext and single inner dots).
func isIDLeft(s string) bool {
	if len(s) == 0 || len(s) > 200 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0) {
			return false
		}
	}
	return true
}
