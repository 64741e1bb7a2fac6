package cas

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/url"
	"time"

	"campusid/internal/session"
	"campusid/internal/store"
)

// Single logout (CAS Protocol 3.0, section 2.3.3 and appendix C): when a
// campusid session ends, each service ticket issued in it to a service with
// a logout URL becomes one back-channel POST to that URL, form field
// logoutRequest holding a SAML 2.0 LogoutRequest whose SessionIndex is the
// ticket id. Services without a logout URL get nothing (the specification
// allows posting to the service URL itself; campusid does not, so that only
// services that asked for it are called). The messages go through the
// durable delivery queue, retried while the service is down.

// DeliveryKindLogout is the deliveries.kind of CAS logoutRequests.
const DeliveryKindLogout = "cas_logout"

// SAML namespaces of the logoutRequest.
const (
	NamespaceSAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
	NamespaceSAML  = "urn:oasis:names:tc:SAML:2.0:assertion"
)

// logoutRequest is the XML of the specification; the prefixed names are
// written as they are (encoding/xml would otherwise invent prefixes), the
// values are escaped by the encoder.
type logoutRequest struct {
	XMLName      xml.Name `xml:"samlp:LogoutRequest"`
	SAMLP        string   `xml:"xmlns:samlp,attr"`
	SAML         string   `xml:"xmlns:saml,attr"`
	ID           string   `xml:"ID,attr"`
	Version      string   `xml:"Version,attr"`
	IssueInstant string   `xml:"IssueInstant,attr"`
	NameID       string   `xml:"saml:NameID"`
	SessionIndex string   `xml:"samlp:SessionIndex"`
}

// LogoutRequest returns the logoutRequest XML naming ticket.
func LogoutRequest(ticket string, now time.Time) (string, error) {
	b, err := xml.Marshal(logoutRequest{SAMLP: NamespaceSAMLP, SAML: NamespaceSAML, ID: "LR-" + session.NewToken(),
		Version: "2.0", IssueInstant: now.UTC().Format("2006-01-02T15:04:05Z"), NameID: "@NOT_USED@", SessionIndex: ticket})
	if err != nil {
		return "", fmt.Errorf("cas: logout request: %w", err)
	}
	return string(b), nil
}

// QueueSingleLogout queues the logoutRequests of an ended session, in tx:
// it runs in the back-channel propagation transaction, after the session's
// logout was claimed (oidc.BackChannel.Also), so it happens once.
func QueueSingleLogout(ctx context.Context, tx *store.DB, s store.Session, now time.Time) error {
	targets, err := tx.CASLogoutTargets(ctx, s.ID)
	if err != nil {
		return err
	}
	for _, t := range targets {
		body, err := LogoutRequest(t.TicketID, now)
		if err != nil {
			return err
		}
		if err := tx.EnqueueDelivery(ctx, &store.Delivery{Kind: DeliveryKindLogout, URL: t.LogoutURL,
			Body: url.Values{"logoutRequest": {body}}.Encode(), ContentType: "application/x-www-form-urlencoded",
			Subject: t.ServiceID, CreatedAt: now}); err != nil {
			return err
		}
	}
	return nil
}
