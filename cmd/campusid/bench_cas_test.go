package main

// BenchmarkCASTicket: figure 5 of docs/benchmarks.md (issue #5, "Figures to
// measure"). Like the other benchmarks it runs only under -bench, on a node
// with the production defaults (benchNode), and measures its baseline in the
// same run so the figures read as ratios. It reuses figure 4's server
// (boServer: the bare handler on the same httptest server as the node) and
// clients (benchClient for the browser, boClient for the service).

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"campusid/internal/store"
)

// bcService is the service URL the benchmark's application sends; it is
// registered with a prefix pattern, as a portal usually is.
const (
	bcPattern = "https://ent.univ.example/"
	bcService = "https://ent.univ.example/portail/"
)

// BenchmarkCASTicket is figure 5: CAS service tickets issued and validated
// per second per core, against a bare handler on the same server. Run it with
// -cpu 1: the client, the server and SQLite share one core (PostgreSQL runs
// in its own processes, outside GOMAXPROCS, and its CPU is not counted). As
// in figure 4, b.RunParallel runs four client goroutines per P.
//
// Per database (sqlite, postgres; the latter skipped unless
// CAMPUSID_TEST_POSTGRES is set), one node with one CAS service releasing
// uid, mail and eduPersonPrincipalName, then:
//
//   - bare: GET of a handler writing "ok" on the same httptest server (one
//     request per operation);
//   - p3: one operation is one ticket's life, two requests. The browser
//     (a signed-in benchClient: session cookie, device cookie, no redirect
//     followed) GETs /cas/login?service=S and must get a 302 to S with an
//     ST- ticket; the service (a boClient, its own connection pool, no
//     cookie) GETs /cas/p3/serviceValidate?ticket=...&service=S and must get
//     an authenticationSuccess for jdupont with the mail attribute. Anything
//     else fails the benchmark. Each worker goroutine has a session of its
//     own, signed in before the timer.
//
// Reported: ops/s (wall clock; tickets issued and validated per second for
// p3, requests per second for bare), ops/cpu-s (per CPU-second of the test
// process, client included) and x-bare (ops/s over the bare handler's ops/s
// measured just before in the same process).
func BenchmarkCASTicket(b *testing.B) {
	const par = 4 // client goroutines per P
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			n := benchNode(b, d, nil)
			if _, err := n.cli("cas-service", "add", "--id", "ent", "--name", "ENT", "--url", bcPattern,
				"--match", "prefix", "--attributes", "uid,mail,eduPersonPrincipalName"); err != nil {
				b.Fatal(err)
			}
			base := boServer(b, n)
			workers := par * runtime.GOMAXPROCS(0)

			// One session per worker, kept in a pool across the repeated calls
			// of the sub-benchmark. The browser signs in once first so that
			// it has its device cookie (no new-device mail afterwards).
			br := newBenchClient(base, 2*workers)
			sessions := make(chan *http.Cookie, workers)
			for range workers {
				ck, err := br.signIn("jdupont", goodPassword)
				if err != nil {
					b.Fatal(err)
				}
				sessions <- ck
			}

			var bareRate float64 // the bare handler's, measured first
			run := func(b *testing.B, newStep boWorker) { boRun(b, base, 2*workers, par, "ops", bareRate, newStep) }

			b.Run("bare", func(b *testing.B) {
				bareRate = 0
				run(b, func(svc *boClient) (func() error, func()) {
					return func() error {
						status, body, err := svc.do("GET", boBarePath, nil, "", "")
						if err != nil {
							return err
						}
						if status != http.StatusOK {
							return &boError{"bare", status, body}
						}
						return nil
					}, nil
				})
				bareRate = float64(b.N) / b.Elapsed().Seconds()
			})

			login := "/cas/login?" + url.Values{"service": {bcService}}.Encode()
			validate := "/cas/p3/serviceValidate?" + url.Values{"service": {bcService}}.Encode() + "&ticket="
			b.Run("p3", func(b *testing.B) {
				run(b, func(svc *boClient) (func() error, func()) {
					ck := <-sessions
					return func() error {
						tk, err := bcTicket(br, login, ck)
						if err != nil {
							return err
						}
						status, body, err := svc.do("GET", validate+url.QueryEscape(tk), nil, "", "")
						if err != nil {
							return err
						}
						if status != http.StatusOK || !bytes.Contains(body, []byte("<cas:authenticationSuccess>")) ||
							!bytes.Contains(body, []byte("<cas:user>jdupont</cas:user>")) ||
							!bytes.Contains(body, []byte("<cas:mail>jean.dupont@univ.example</cas:mail>")) {
							return &boError{"serviceValidate", status, body}
						}
						return nil
					}, func() { sessions <- ck }
				})
			})
		})
	}
}

// bcTicket is the browser's half: GET /cas/login with session cookie ck, and
// the service ticket from the 302's Location.
func bcTicket(br *benchClient, login string, ck *http.Cookie) (string, error) {
	resp, err := br.do("GET", login, nil, ck)
	if err != nil {
		return "", err
	}
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, bcService+"?ticket=ST-") {
		return "", errors.New("cas/login: status " + http.StatusText(resp.StatusCode) + ", location " + loc)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	return u.Query().Get("ticket"), nil
}
