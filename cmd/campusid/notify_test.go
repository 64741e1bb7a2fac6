package main

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"campusid/internal/outbox"
	"campusid/internal/store"
)

// mailsOf returns the messages with the subject, newest first.
func mailsOf(n *node, subject string) []outbox.DevMail {
	var out []outbox.DevMail
	for _, m := range n.mails() {
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

func recipients(ms []outbox.DevMail) []string {
	var to []string
	for _, m := range ms {
		to = append(to, m.To)
	}
	slices.Sort(to)
	return to
}

func TestNotifyNewDevice(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("dev", goodPassword, "dev@univ.example", "dev2@univ.example")
		const subject = "Nouvelle connexion à votre compte"
		first := n.browser()
		first.mustSignIn("dev", goodPassword)
		if got := mailsOf(n, subject); len(got) != 0 {
			t.Fatalf("the account's first device was reported: %v", recipients(got))
		}
		first.post("/logout", url.Values{})
		first.mustSignIn("dev", goodPassword) // same browser again
		if got := mailsOf(n, subject); len(got) != 0 {
			t.Fatalf("a known device was reported as new")
		}
		other := n.browser()
		other.ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Safari/604.1"
		other.mustSignIn("dev2@univ.example", goodPassword)
		got := mailsOf(n, subject)
		if want := []string{"dev2@univ.example", "dev@univ.example"}; !slices.Equal(recipients(got), want) {
			t.Fatalf("new device told to %v, want %v", recipients(got), want)
		}
		if !strings.Contains(got[0].Text, "Safari sur iOS") || !strings.Contains(got[0].Text, "127.0.0.1") {
			t.Errorf("the message does not say which device and from where:\n%s", got[0].Text)
		}
	})
}

func TestNotifyNewDeviceCanBeTurnedOff(t *testing.T) {
	cfg := testConfig(t, "sqlite:"+t.TempDir()+"/c.db")
	cfg.SelfService.NotifyNewDevice = false
	n := startNode(t, cfg, nil)
	n.user("quiet", goodPassword, "quiet@univ.example")
	n.browser().mustSignIn("quiet", goodPassword)
	n.browser().mustSignIn("quiet", goodPassword)
	if got := mailsOf(n, "Nouvelle connexion à votre compte"); len(got) != 0 {
		t.Fatalf("notified although notify_new_device is off")
	}
}

func TestNotifyPasswordChangedAndEmailAdded(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("chg", goodPassword, "chg@univ.example", "chg.alt@univ.example")
		b := n.browser()
		b.lang = "en-US"
		b.mustSignIn("chg", goodPassword)
		p := b.post("/account/password", url.Values{"current_password": {goodPassword}, "new_password": {"Zx8$kq2!Wm4_p"},
			"confirm_password": {"Zx8$kq2!Wm4_p"}, "signout_others": {"on"}})
		if p.Status != http.StatusSeeOther {
			t.Fatalf("password change: %d\n%s", p.Status, p.Body)
		}
		got := mailsOf(n, "Your password was changed")
		if want := []string{"chg.alt@univ.example", "chg@univ.example"}; !slices.Equal(recipients(got), want) {
			t.Fatalf("password change told to %v, want %v", recipients(got), want)
		}
		if !strings.Contains(got[0].Text, "/recover") {
			t.Errorf("the message does not say what to do if it was not them:\n%s", got[0].Text)
		}
		if p := b.post("/account/emails", url.Values{"email": {"chg@perso.example"}}); p.Status != http.StatusSeeOther {
			t.Fatalf("add email: %d", p.Status)
		}
		added := mailsOf(n, "An address was added to your account")
		if want := []string{"chg.alt@univ.example", "chg@univ.example"}; !slices.Equal(recipients(added), want) {
			t.Fatalf("address added told to %v, want the verified addresses %v", recipients(added), want)
		}
		if !strings.Contains(added[0].Text, "chg@perso.example") {
			t.Errorf("the message does not name the added address")
		}
	})
}
