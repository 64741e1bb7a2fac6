package cas

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"campusid/internal/session"
	"campusid/internal/store"
)

// Proxy tickets (CAS Protocol 3.0, sections 2.5.4, 2.7, 3.2 to 3.4).
//
// A service registered with proxying allowed asks for a proxy-granting
// ticket by passing pgtUrl when it validates a ticket. The callback must be
// an https URL that matches the service's own registered pattern, and must
// answer 200 to GET pgtUrl?pgtId=PGT-...&pgtIou=PGTIOU-... over a connection
// whose certificate verifies (system roots plus cas.proxy_ca_file);
// redirects are not followed. Otherwise the validation fails with
// INVALID_PROXY_CALLBACK (UNAUTHORIZED_SERVICE_PROXY when the service may
// not proxy at all) and no PGT exists. A PGT lives as long as the campusid
// session it came from: a sign-out ends it. /cas/proxy turns it into a
// proxy ticket (PT-) for a registered target service, validated at
// /proxyValidate with the chain of callback URLs in cas:proxies.

// callbackTimeout bounds one pgtUrl call.
const callbackTimeout = 10 * time.Second

// NewProxyClient returns the client that calls pgtUrl callbacks: TLS
// verified against the system roots and, when caFile is set, the PEM
// certificates in it (a university's own certificate authority); no
// redirects; bounded in time.
func NewProxyClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("cas.proxy_ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cas.proxy_ca_file: no PEM certificate in %s", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: callbackTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// grantPGT creates a proxy-granting ticket for the service that validated
// t and hands it to pgtURL; it returns the PGTIOU, or an error code and its
// description.
func (h *Handler) grantPGT(ctx context.Context, svc store.CASService, t store.CASTicket, pgtURL string) (iou, code, desc string) {
	if !svc.AllowProxy {
		return "", UnauthorizedServiceProxy, "service " + svc.ID + " is not allowed to proxy authentication"
	}
	// The chain is kept space-separated and shown to back-ends: the URL is
	// plain ASCII without spaces or controls.
	if strings.IndexFunc(pgtURL, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
		return "", InvalidProxyCallback, "pgtUrl must be an https URL in ASCII, without spaces"
	}
	u, err := url.Parse(pgtURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return "", InvalidProxyCallback, "pgtUrl must be an https URL"
	}
	if norm, ok := Normalize(pgtURL); !ok || !Matches(svc, norm) {
		return "", InvalidProxyCallback, "pgtUrl does not match the registered URL of service " + svc.ID
	}
	pgt, iou := ticketID("PGT-"), ticketID("PGTIOU-")
	now := h.Now()
	p := store.CASPGT{IDHash: session.HashToken(pgt), ServiceID: svc.ID, AccountID: t.AccountID, SessionID: t.SessionID,
		AuthTime: t.AuthTime, LongTerm: t.LongTerm, Proxies: append([]string{pgtURL}, t.Proxies...), CreatedAt: now}
	// Stored first, so that it works as soon as the service has it.
	if err := h.DB.CreateCASPGT(ctx, p); err != nil {
		return "", InternalError, "internal error"
	}
	if err := h.callback(ctx, u, pgt, iou); err != nil {
		if derr := h.DB.DeleteCASPGT(context.WithoutCancel(ctx), p.IDHash); derr != nil && !errors.Is(derr, store.ErrNotFound) {
			return "", InternalError, "internal error"
		}
		// The caller learns that it failed, not how: the detail (which could
		// map a network) goes to the log and the audit.
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.pgt_failure", AccountID: t.AccountID,
			Details: map[string]string{"service_id": svc.ID, "pgt_url": pgtURL, "error": err.Error()}})
		return "", InvalidProxyCallback, "the proxy callback " + pgtURL + " did not answer 200 over verified HTTPS (campusid's audit log says why)"
	}
	h.countTicket("PGT")
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.pgt", AccountID: t.AccountID,
		Details: map[string]string{"service_id": svc.ID, "session_id": t.SessionID, "pgt_url": pgtURL}})
	return iou, "", ""
}

// callback GETs the pgtUrl with pgtId and pgtIou added to its own query.
func (h *Handler) callback(ctx context.Context, u *url.URL, pgt, iou string) error {
	cu := *u
	add := url.Values{"pgtId": {pgt}, "pgtIou": {iou}}.Encode()
	if cu.RawQuery != "" {
		cu.RawQuery += "&" + add
	} else {
		cu.RawQuery = add
	}
	ctx, cancel := context.WithTimeout(ctx, callbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cu.String(), nil)
	if err != nil {
		return err
	}
	resp, err := h.ProxyClient.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("not reached over verified HTTPS (%v)", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %d, not 200", resp.StatusCode)
	}
	return nil
}

// proxy is /cas/proxy: a proxy ticket for targetService from a PGT.
func (h *Handler) proxy(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("targetService")
	ticket, code, desc := h.proxyTicket(r.Context(), r.URL.Query().Get("pgt"), target)
	if code != "" {
		h.Audit.Record(r.Context(), nil, store.AuditEvent{Type: "cas.proxy_failure",
			Details: map[string]string{"code": code, "target": target}})
	}
	switch {
	case code != "":
		writeFailure(w, r, "proxyFailure", code, desc)
	case wantJSON(r):
		writeJSON(w, map[string]any{"proxySuccess": map[string]string{"proxyTicket": ticket}})
	default:
		var b strings.Builder
		b.WriteString("  <cas:proxySuccess>\n")
		element(&b, "    ", "proxyTicket", ticket)
		b.WriteString("  </cas:proxySuccess>\n")
		writeXML(w, b.String())
	}
}

func (h *Handler) proxyTicket(ctx context.Context, pgt, target string) (ticket, code, desc string) {
	if pgt == "" || target == "" {
		return "", InvalidRequest, "'pgt' and 'targetService' parameters are both required"
	}
	now := h.Now()
	p, err := h.DB.CASPGTByHash(ctx, session.HashToken(pgt))
	if errors.Is(err, store.ErrNotFound) {
		return "", InvalidTicket, "pgt not recognized"
	} else if err != nil {
		return "", InternalError, "internal error"
	}
	if _, code, desc := h.signedIn(ctx, p.SessionID, now); code != "" {
		return "", code, "pgt: " + desc
	}
	owner, err := h.DB.CASServiceByID(ctx, p.ServiceID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !owner.AllowProxy) {
		return "", UnauthorizedService, "service " + p.ServiceID + " is no longer allowed to proxy authentication"
	} else if err != nil {
		return "", InternalError, "internal error"
	}
	svc, norm, err := FindService(ctx, h.DB, target)
	if errors.Is(err, store.ErrNotFound) {
		return "", UnauthorizedService, "targetService is not a registered service"
	} else if err != nil {
		return "", InternalError, "internal error"
	}
	t := store.CASTicket{ID: ticketID("PT-"), ServiceID: svc.ID, ServiceURL: norm, AccountID: p.AccountID,
		SessionID: p.SessionID, AuthTime: p.AuthTime, LongTerm: p.LongTerm, Proxies: p.Proxies, CreatedAt: now,
		ExpiresAt: now.Add(h.TicketLifetime)}
	if err := h.DB.CreateCASTicket(ctx, t); err != nil {
		return "", InternalError, "internal error"
	}
	h.countTicket("PT")
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.proxy_ticket", AccountID: p.AccountID,
		Details: map[string]string{"service_id": svc.ID, "proxied_by": p.ServiceID, "session_id": p.SessionID}})
	return t.ID, "", ""
}
