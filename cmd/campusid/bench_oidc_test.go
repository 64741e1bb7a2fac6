package main

// BenchmarkOIDCToken: figure 4 of docs/benchmarks.md (issue #4, "Figures to
// measure"). Like the other benchmarks it runs only under -bench, on a node
// with the production defaults (benchNode), and measures its baseline in the
// same run so the figures read as ratios.

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"campusid/internal/store"
)

// boBarePath is served by a trivial handler on the same server as the node.
const boBarePath = "/_bench/bare"

// boServer is one httptest server in front of the node: boBarePath answers
// "ok" (no middleware, no database), every other path goes to the node's
// own handler (srv.handler, what n.URL serves). The bare handler and the
// protocol endpoints thus share the listener, the http.Server and the
// client's connection pool; only the handler differs.
func boServer(b *testing.B, n *node) string {
	mux := http.NewServeMux()
	mux.HandleFunc(boBarePath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.Handle("/", n.srv.handler)
	hs := httptest.NewServer(mux)
	b.Cleanup(hs.Close)
	return hs.URL
}

// boClient posts forms with HTTP Basic client authentication (the way
// x/oauth2 does with AuthStyleInHeader) over kept-alive connections, reads
// the whole answer and returns its status and body. Hand-rolled rather than
// x/oauth2's clientcredentials or TokenSource so that the client's share of
// the core (JSON decoding, token caching) stays small and the same for every
// sub-benchmark.
type boClient struct {
	base string
	c    *http.Client
}

func boNewClient(base string, conns int) *boClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = conns, conns
	return &boClient{base: base, c: &http.Client{Transport: tr}}
}

func (c *boClient) do(method, path string, form url.Values, id, secret string) (int, []byte, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, out, err
}

// boField extracts a string field of a flat JSON answer without decoding it
// all (the values of interest are base64url or hex: no escapes).
func boField(body []byte, key string) string {
	_, rest, ok := bytes.Cut(body, []byte(`"`+key+`":"`))
	if !ok {
		return ""
	}
	v, _, _ := bytes.Cut(rest, []byte(`"`))
	return string(v)
}

// boRefreshToken runs one authorization code flow (PKCE) of the public
// client "sync" with offline_access in browser br (signing in and consenting
// the first time) and returns the refresh and access tokens. Each call
// starts a new refresh-token family.
func boRefreshToken(b *testing.B, n *node, br *browser, conf *oauth2.Config) *oauth2.Token {
	verifier, challenge := pkce()
	f := &authFlow{b: br, login: "jdupont", password: goodPassword, consent: "allow"}
	code := f.code(b, conf.AuthCodeURL("s", challenge), "s")
	tok, err := conf.Exchange(b.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" || tok.AccessToken == "" {
		b.Fatalf("exchange: %v %v", tok, err)
	}
	return tok
}

// BenchmarkOIDCToken is figure 4: protocol requests per second per core,
// against a bare handler on the same server. Run it with -cpu 1: the client,
// the server and SQLite share one core (PostgreSQL runs in its own
// processes, outside GOMAXPROCS, and its CPU is not counted). It uses
// b.RunParallel with four client goroutines per P, as BenchmarkSessionLookup
// does, so that the core has work while a request waits on the loopback or
// on PostgreSQL; with -cpu 1 there is still one P, and req/s is per core.
//
// Per database (sqlite, postgres; the latter skipped unless
// CAMPUSID_TEST_POSTGRES is set), one node, then:
//
//   - bare: GET of a handler writing "ok" on the same httptest server;
//   - client_credentials: POST /oauth2/token, grant_type=client_credentials,
//     client_secret_basic, scope api.read: a signed JWT access token;
//   - refresh_token: POST /oauth2/token, grant_type=refresh_token, by the
//     public client "sync" (scopes openid offline_access): a new refresh
//     token, an opaque access token and a signed ID token. Each worker
//     goroutine owns one refresh-token family and always presents the newest
//     token of it, so every iteration is a legitimate rotation and reuse
//     detection never triggers (a 400 fails the benchmark);
//   - introspection: POST /oauth2/introspect of a person's opaque access
//     token by the confidential client "svc" (client_secret_basic); the
//     answer must be active.
//
// Reported: req/s (wall clock), req/cpu-s (requests per CPU-second of the
// test process, client included) and x-bare (req/s over the bare handler's
// req/s measured just before in the same process).
func BenchmarkOIDCToken(b *testing.B) {
	const par = 4 // client goroutines per P
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			n := benchNode(b, d, nil)
			svc := n.app("--id", "svc", "--name", "Service", "--grant", "client_credentials", "--scope", "api.read")
			n.app("--id", "sync", "--name", "Sync", "--public", "--redirect-uri", appRedirect)
			conf := n.oauthConfig("sync", "", "openid", "offline_access")
			base := boServer(b, n)
			workers := par * runtime.GOMAXPROCS(0)

			// One refresh-token family per worker, kept in a pool across the
			// repeated calls of the sub-benchmark (each takes one at start and
			// puts back the newest at the end).
			br := n.browser()
			pool := make(chan string, workers)
			var access string
			for range workers {
				tok := boRefreshToken(b, n, br, conf)
				pool <- tok.RefreshToken
				access = tok.AccessToken
			}

			var bareRate float64 // the bare handler's, measured first
			run := func(b *testing.B, newWorker boWorker) { boRun(b, base, 2*workers, par, "req", bareRate, newWorker) }
			check := func(what string, status, want int, body []byte) error {
				if status != want {
					return &boError{what, status, body}
				}
				return nil
			}

			b.Run("bare", func(b *testing.B) {
				bareRate = 0
				run(b, func(c *boClient) (func() error, func()) {
					return func() error {
						status, body, err := c.do("GET", boBarePath, nil, "", "")
						if err != nil {
							return err
						}
						return check("bare", status, http.StatusOK, body)
					}, nil
				})
				bareRate = float64(b.N) / b.Elapsed().Seconds()
			})
			ccForm := url.Values{"grant_type": {"client_credentials"}, "scope": {"api.read"}}
			b.Run("client_credentials", func(b *testing.B) {
				run(b, func(c *boClient) (func() error, func()) {
					return func() error {
						status, body, err := c.do("POST", "/oauth2/token", ccForm, "svc", svc)
						if err != nil {
							return err
						}
						if err := check("client_credentials", status, http.StatusOK, body); err != nil {
							return err
						}
						if boField(body, "access_token") == "" {
							return &boError{"client_credentials: no access token", status, body}
						}
						return nil
					}, nil
				})
			})
			b.Run("refresh_token", func(b *testing.B) {
				run(b, func(c *boClient) (func() error, func()) {
					// The worker owns the family of the token it takes, and
					// puts back the newest one when it stops. After a failure
					// the family may be revoked: the benchmark has failed anyway.
					rt := <-pool
					return func() error {
						status, body, err := c.do("POST", "/oauth2/token", url.Values{
							"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"sync"}}, "", "")
						if err != nil {
							return err
						}
						if err := check("refresh_token", status, http.StatusOK, body); err != nil {
							return err
						}
						next := boField(body, "refresh_token")
						if next == "" || next == rt || boField(body, "id_token") == "" {
							return &boError{"refresh_token: no new refresh token or ID token", status, body}
						}
						rt = next
						return nil
					}, func() { pool <- rt }
				})
			})
			b.Run("introspection", func(b *testing.B) {
				form := url.Values{"token": {access}, "token_type_hint": {"access_token"}}
				run(b, func(c *boClient) (func() error, func()) {
					return func() error {
						status, body, err := c.do("POST", "/oauth2/introspect", form, "svc", svc)
						if err != nil {
							return err
						}
						if err := check("introspection", status, http.StatusOK, body); err != nil {
							return err
						}
						if !bytes.Contains(body, []byte(`"active":true`)) {
							return &boError{"introspection: not active", status, body}
						}
						return nil
					}, nil
				})
			})
		})
	}
}

type boError struct {
	what   string
	status int
	body   []byte
}

func (e *boError) Error() string {
	return e.what + ": status " + http.StatusText(e.status) + ": " + string(e.body)
}

// boWorker returns one client goroutine's step, and what to do when it
// stops (nil: nothing).
type boWorker func(c *boClient) (step func() error, release func())

// boRun warms a client of base up, then runs newWorker's steps with par
// goroutines per P and reports unit/s, unit/cpu-s (the test process's CPU)
// and, when bareRate is known, the ratio to it. Figures 4 and 5.
func boRun(b *testing.B, base string, conns, par int, unit string, bareRate float64, newWorker boWorker) {
	c := boNewClient(base, conns)
	w, release := newWorker(c)
	for range 20 { // warm the connections, the statement paths and the heap
		if err := w(); err != nil {
			b.Fatal(err)
		}
	}
	if release != nil {
		release()
	}
	b.SetParallelism(par)
	cpu := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w, release := newWorker(c)
		if release != nil {
			defer release()
		}
		for pb.Next() {
			if err := w(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, unit+"/s")
	b.ReportMetric(float64(b.N)/(processCPU()-cpu).Seconds(), unit+"/cpu-s")
	if bareRate > 0 {
		b.ReportMetric(rate/bareRate, "x-bare")
	}
}
