package oidc

import (
	"strings"
	"testing"

	"campusid/internal/store"
)

func TestValidateRedirectURI(t *testing.T) {
	cases := []struct {
		uri    string
		public bool
		ok     bool
	}{
		{"https://app.example/cb", false, true},
		{"https://app.example/cb?x=1", false, true},
		{"http://127.0.0.1:8080/cb", false, true},
		{"http://localhost/cb", true, true},
		{"http://[::1]:9/cb", true, true},
		{"com.example.app:/cb", true, true},
		{"com.example.app:/cb", false, false},
		{"http://app.example/cb", false, false},
		{"http://app.example/cb", true, false},
		{"https://*.example/cb", false, false},
		{"https://app.example/cb#frag", false, false},
		{"https://user@app.example/cb", false, false},
		{"/cb", false, false},
		{"javascript:alert(1)", true, false},
		{"data:text/html,x", true, false},
		{"https:///cb", false, false},
	}
	for _, c := range cases {
		err := ValidateRedirectURI(c.uri, c.public)
		if (err == nil) != c.ok {
			t.Errorf("ValidateRedirectURI(%q, public=%v) = %v, want ok=%v", c.uri, c.public, err, c.ok)
		}
	}
}

func TestRedirectAllowed(t *testing.T) {
	native := store.OIDCClient{Public: true, RedirectURIs: []string{"http://127.0.0.1/cb", "com.example.app:/cb"}}
	web := store.OIDCClient{RedirectURIs: []string{"https://app.example/cb", "http://127.0.0.1:3000/cb"}}
	cases := []struct {
		c   store.OIDCClient
		uri string
		ok  bool
	}{
		{native, "http://127.0.0.1:51000/cb", true}, // any port (RFC 8252)
		{native, "http://127.0.0.1/cb", true},
		{native, "http://127.0.0.1:51000/other", false},
		{native, "http://127.0.0.1:51000/cb?x=1", false},
		{native, "http://localhost:51000/cb", false}, // another host name
		{native, "com.example.app:/cb", true},
		{native, "com.example.app:/other", false},
		{web, "https://app.example/cb", true},
		{web, "https://app.example/cb/", false},
		{web, "https://app.example/cb?x=1", false},
		{web, "http://127.0.0.1:3001/cb", false}, // exact for a confidential client
		{web, "", false},
	}
	for _, c := range cases {
		if got := redirectAllowed(c.c, c.uri); got != c.ok {
			t.Errorf("redirectAllowed(public=%v, %q) = %v, want %v", c.c.Public, c.uri, got, c.ok)
		}
	}
}

func TestClientSpec(t *testing.T) {
	c, err := ClientSpec{ID: "app", Name: " App ", RedirectURIs: []string{"https://app.example/cb", "https://app.example/cb"}}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "App" || len(c.RedirectURIs) != 1 || strings.Join(c.GrantTypes, " ") != "authorization_code refresh_token" ||
		strings.Join(c.Scopes, " ") != "openid profile email offline_access" {
		t.Fatalf("defaults: %+v", c)
	}
	_, err = ClientSpec{ID: "a b", Name: "", Public: true, Grants: []string{"client_credentials", "password"},
		RedirectURIs: []string{"http://x.example/"}, Scopes: []string{"bad scope"}}.Client()
	for _, want := range []string{"id:", "name:", `grant "password"`, "client_credentials needs a confidential", "http only", `scope "bad scope"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors %v lack %q", err, want)
		}
	}
	if _, err := (ClientSpec{ID: "svc", Name: "Service", Grants: []string{"client_credentials"}}).Client(); err != nil {
		t.Errorf("a service needs no redirect URI: %v", err)
	}
}

func TestSecrets(t *testing.T) {
	secret, hash := NewSecret()
	if len(secret) != 43 || hash != HashSecret(secret) || strings.Contains(hash, secret) {
		t.Fatalf("NewSecret: %q %q", secret, hash)
	}
	c := store.OIDCClient{SecretHash: hash}
	if !secretMatches(c, secret) || secretMatches(c, secret+"x") || secretMatches(c, "") {
		t.Fatal("secretMatches")
	}
	c.Public = true
	if secretMatches(c, secret) {
		t.Fatal("a public client matched a secret")
	}
	if s2, _ := NewSecret(); s2 == secret {
		t.Fatal("two equal secrets")
	}
}
