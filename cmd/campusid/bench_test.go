package main

// Benchmarks for docs/benchmarks.md. They run only under -bench (never in a
// plain `go test ./...`), use the production defaults of config.Default()
// (in particular the OWASP argon2id parameters, not testConfig's cheap ones),
// and each one measures a baseline in the same run so that the figures are
// read as ratios, which survive a noisy or different machine better than
// absolute times. The commands that reproduce each figure are in
// docs/benchmarks.md.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"campusid/internal/account"
	"campusid/internal/config"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

// benchConfig is the production default configuration (config.Load with no
// file and no environment) on the database at dbURL.
func benchConfig(tb testing.TB, dbURL string) config.Config {
	tb.Helper()
	cfg, err := config.Load("", nil)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Database.URL = dbURL
	cfg.DataDir = tb.TempDir()
	return cfg
}

// benchNode starts a node with the default configuration on a fresh database
// of dialect d (skipping on PostgreSQL when CAMPUSID_TEST_POSTGRES is unset),
// with one account whose password hash has the default parameters.
func benchNode(b *testing.B, d store.Dialect, tweak func(*config.Config)) *node {
	b.Helper()
	cfg := benchConfig(b, storetest.URL(b, d))
	if tweak != nil {
		tweak(&cfg)
	}
	n := startNode(b, cfg, nil)
	n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	return n
}

// benchClient is a browser without a cookie jar: each sign-in starts signed
// out, and signed-in requests carry the session cookie explicitly. It keeps
// the device cookie of its first sign-in, like a returning browser, so later
// sign-ins are not from a new device (no notification mail each time). It
// keeps its connections alive, like a browser.
type benchClient struct {
	base   string
	c      *http.Client
	device *http.Cookie // set by the first signIn; read-only afterwards
}

func newBenchClient(base string, conns int) *benchClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = conns, conns
	return &benchClient{base: base, c: &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends one request, reads the body to the end and returns the response
// (with its body closed).
func (c *benchClient) do(method, path string, form url.Values, cookie *http.Cookie) (*http.Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
	if cookie != nil {
		req.AddCookie(cookie)
	}
	if c.device != nil {
		req.AddCookie(c.device)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

// identify posts the first step and returns the flow reference.
func (c *benchClient) identify(login string) (string, error) {
	resp, err := c.do("POST", "/login", url.Values{"login": {login}}, nil)
	if err != nil {
		return "", err
	}
	loc := resp.Header.Get("Location")
	_, ref, ok := strings.Cut(loc, "/login/password?req=")
	if resp.StatusCode != http.StatusSeeOther || !ok {
		return "", fmt.Errorf("identify: status %d location %q", resp.StatusCode, loc)
	}
	return ref, nil
}

// password posts the second step and returns the response.
func (c *benchClient) password(ref, password string) (*http.Response, error) {
	return c.do("POST", "/login/password", url.Values{"req": {ref}, "password": {password}}, nil)
}

// signIn runs both steps and returns the session cookie. Not safe for
// concurrent use until the client has its device cookie.
func (c *benchClient) signIn(login, password string) (*http.Cookie, error) {
	ref, err := c.identify(login)
	if err != nil {
		return nil, err
	}
	resp, err := c.password(ref, password)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account" {
		return nil, fmt.Errorf("password: status %d location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		switch {
		case ck.Name == "campusid_session" && ck.Value != "":
			session = ck
		case ck.Name == "campusid_device" && ck.Value != "" && c.device == nil:
			c.device = &http.Cookie{Name: ck.Name, Value: ck.Value}
		}
	}
	if session == nil {
		return nil, errors.New("password: no session cookie")
	}
	return session, nil
}

// BenchmarkSignIn is figure 1: a full password sign-in over HTTP (POST
// /login, then POST /login/password, through the real mux and middleware
// over loopback, to a session cookie) against the bare argon2id hash with
// the same parameters. Run it with -cpu 1: the client, the server and the
// hash then share one core, and the difference is everything the sign-in
// does besides hashing.
//
// The account exists before the timer starts; each iteration is one sign-in
// of a signed-out browser. Every sign-in succeeds, so no throttle counts
// anything (a success resets the per-account one); the flows, sessions and
// audit tables grow by a row or two per iteration.
func BenchmarkSignIn(b *testing.B) {
	p := config.Default().Password.Hash
	pw, salt := []byte(goodPassword), make([]byte, 16)
	bare := func() { argon2.IDKey(pw, salt, p.Iterations, p.MemoryKiB, p.Parallelism, 32) }
	// Warm-ups: the first hashes of a fresh process page-fault their 19 MiB
	// in (the heap grows, the scavenger gives memory back); without them the
	// first sub-benchmark run pays a few milliseconds the others do not.
	b.Run("argon2id-bare", func(b *testing.B) {
		for range 10 {
			bare()
		}
		cpu := startCPU(b)
		for b.Loop() {
			bare()
		}
		cpu.report()
	})
	b.Run("hasher-verify", func(b *testing.B) {
		hp := account.DefaultHashParams()
		hp.Memory, hp.Iterations, hp.Parallelism = p.MemoryKiB, p.Iterations, p.Parallelism
		h := account.NewHasher(hp, 0, p.MaxWait.D())
		enc, err := h.Hash(b.Context(), goodPassword)
		if err != nil {
			b.Fatal(err)
		}
		for range 3 {
			h.Verify(b.Context(), enc, goodPassword)
		}
		cpu := startCPU(b)
		for b.Loop() {
			if ok, _, err := h.Verify(b.Context(), enc, goodPassword); !ok || err != nil {
				b.Fatalf("Verify = %v, %v", ok, err)
			}
		}
		cpu.report()
	})
	// http-*: the sign-in with the default parameters. nohash-*: the same
	// sign-in with argon2id at its minimum (8 KiB, one pass: some
	// microseconds), which measures directly everything a sign-in costs
	// besides the hash.
	for _, v := range []struct {
		name  string
		tweak func(*config.Config)
	}{{"http-", nil}, {"nohash-", func(c *config.Config) { c.Password.Hash.MemoryKiB, c.Password.Hash.Iterations = 8, 1 }}} {
		for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
			b.Run(v.name+string(d), func(b *testing.B) {
				c := signInClient(b, d, v.tweak)
				cpu := startCPU(b)
				for b.Loop() {
					if _, err := c.signIn("jdupont", goodPassword); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report()
			})
		}
	}
}

// signInClient starts a node with an account and returns a client that has
// signed in a few times (warming the connection, the database and the heap).
func signInClient(b *testing.B, d store.Dialect, tweak func(*config.Config)) *benchClient {
	n := benchNode(b, d, tweak)
	c := newBenchClient(n.URL, 2)
	for range 3 {
		if _, err := c.signIn("jdupont", goodPassword); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// cpuMeter reports the CPU time (user + system, all threads) the test
// process used per operation: with the client and the server in the process,
// that is what one sign-in or request costs, whatever else the machine runs
// (a database server in another process is not counted). It also reports the
// part of it spent in the kernel (page faults, network, files), the GC
// cycles per operation and the runtime's estimate of the GC's CPU time.
type cpuMeter struct {
	b          *testing.B
	start, sys time.Duration
	gcs, gcNS  float64
}

var gcMetrics = []string{"/gc/cycles/total:gc-cycles", "/cpu/classes/gc/total:cpu-seconds"}

func readGC() (cycles, seconds float64) {
	s := []metrics.Sample{{Name: gcMetrics[0]}, {Name: gcMetrics[1]}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64()), s[1].Value.Float64()
}

func startCPU(b *testing.B) cpuMeter {
	m := cpuMeter{b: b, start: processCPU(), sys: systemCPU()}
	m.gcs, m.gcNS = readGC()
	return m
}

func (m cpuMeter) report() {
	n := float64(m.b.N)
	gcs, gcSec := readGC()
	m.b.ReportMetric(float64((processCPU()-m.start).Nanoseconds())/n, "cpu-ns/op")
	m.b.ReportMetric(float64((systemCPU()-m.sys).Nanoseconds())/n, "sys-ns/op")
	m.b.ReportMetric((gcs-m.gcs)/n, "gc/op")
	m.b.ReportMetric((gcSec-m.gcNS)*1e9/n, "gc-cpu-ns/op")
}

// processCPU and systemCPU are the process's user+system and system CPU time.
func processCPU() time.Duration { u, s := rusage(); return u + s }
func systemCPU() time.Duration  { _, s := rusage(); return s }

func rusage() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkSessionLookup is figure 2: signed-in requests per second, against
// a trivial handler behind httptest on the same loopback. Run it with -cpu 1
// for requests per second per core (the client shares that core; PostgreSQL
// runs in its own process, outside GOMAXPROCS). Each P runs four client
// goroutines, sharing one session.
//
//   - bare: a handler that writes "ok", no middleware, no database;
//   - login-redirect: GET /login with a live session: the middleware and the
//     session lookup (session row + account row), then a 303 to /account;
//   - account: GET /account: the same, plus the e-mails and sessions queries
//     and the whole page rendered.
//
// Besides req/s (wall clock), req/cpu-s is requests per CPU-second of the test
// process (client included; PostgreSQL's own processes not), which a busy
// machine disturbs much less.
func BenchmarkSessionLookup(b *testing.B) {
	run := func(b *testing.B, base, path string, cookie *http.Cookie, want int) {
		c := newBenchClient(base, 64)
		b.SetParallelism(4)
		cpu := processCPU()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := c.do("GET", path, nil, cookie)
				if err != nil {
					b.Error(err)
					return
				}
				if resp.StatusCode != want {
					b.Errorf("GET %s: status %d, want %d", path, resp.StatusCode, want)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		b.ReportMetric(float64(b.N)/(processCPU()-cpu).Seconds(), "req/cpu-s")
	}
	b.Run("bare", func(b *testing.B) {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "ok\n")
		}))
		b.Cleanup(hs.Close)
		run(b, hs.URL, "/", nil, http.StatusOK)
	})
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		for _, page := range []struct {
			name, path string
			want       int
		}{{"login-redirect", "/login", http.StatusSeeOther}, {"account", "/account", http.StatusOK}} {
			b.Run(string(d)+"-"+page.name, func(b *testing.B) {
				n := benchNode(b, d, nil)
				cookie, err := newBenchClient(n.URL, 1).signIn("jdupont", goodPassword)
				if err != nil {
					b.Fatal(err)
				}
				run(b, n.URL, page.path, cookie, page.want)
			})
		}
	}
}

// BenchmarkSignInBurst is figure 3: 200 sign-ins whose password steps all
// arrive at once, with the default hash parameters, max_wait (3s) and
// max_concurrent (0 = NumCPU), and for contrast max_concurrent=8. One
// iteration is one burst: run it with -benchtime 1x. The 200 first steps
// (identify) run before the burst and are not measured; all come from one
// known browser (its device cookie), so no new-device mail is queued.
//
// It reports the peak heap sampled every half millisecond during the burst
// (heap-peak-MiB: runtime/metrics /memory/classes/heap/objects, live and
// not-yet-swept objects), the heap before it (heap-base-MiB), the largest
// live heap a GC found during it (live-peak-MiB), the peak RSS
// of the process during the burst (VmHWM after resetting it through
// /proc/self/clear_refs), the most hashes seen in flight, how many sign-ins
// succeeded and how many got 503 (no hashing slot within max_wait), and the
// burst's duration. ns/op is suppressed (it would include the setup).
func BenchmarkSignInBurst(b *testing.B) {
	const burst = 200
	for _, limit := range []int{0, 8} {
		b.Run(fmt.Sprintf("max_concurrent=%d", limit), func(b *testing.B) {
			n := benchNode(b, store.SQLite, func(c *config.Config) { c.Password.Hash.MaxConcurrent = limit })
			hasher := n.srv.accounts.Hasher
			for range b.N {
				c := newBenchClient(n.URL, burst)
				if _, err := c.signIn("jdupont", goodPassword); err != nil { // the device cookie
					b.Fatal(err)
				}
				refs := make([]string, burst)
				for i := range refs {
					ref, err := c.identify("jdupont")
					if err != nil {
						b.Fatal(err)
					}
					refs[i] = ref
				}
				// Open the connections now so the burst does not measure dials.
				var warm sync.WaitGroup
				for range burst {
					warm.Go(func() { c.do("GET", "/healthz", nil, nil) })
				}
				warm.Wait()

				runtime.GC()
				debug.FreeOSMemory()
				base := readHeap()
				rssBase := procStatusKiB("VmRSS")
				hwmReset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil

				var peak, peakTotal, peakLive uint64
				var maxInFlight, maxWaiting int
				stop, sampled := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(sampled)
					t := time.NewTicker(500 * time.Microsecond)
					defer t.Stop()
					for {
						h := readHeap()
						peak, peakTotal, peakLive = max(peak, h.objects), max(peakTotal, h.total), max(peakLive, h.live)
						maxInFlight, maxWaiting = max(maxInFlight, hasher.InFlight()), max(maxWaiting, hasher.Waiting())
						select {
						case <-stop:
							return
						case <-t.C:
						}
					}
				}()

				var ok, busy, other atomic.Int64
				var wg sync.WaitGroup
				start := make(chan struct{})
				for _, ref := range refs {
					wg.Go(func() {
						<-start
						resp, err := c.password(ref, goodPassword)
						switch {
						case err != nil:
							other.Add(1)
						case resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == "/account":
							ok.Add(1)
						case resp.StatusCode == http.StatusServiceUnavailable:
							busy.Add(1)
						default:
							other.Add(1)
						}
					})
				}
				t0 := time.Now()
				close(start)
				wg.Wait()
				elapsed := time.Since(t0)
				close(stop)
				<-sampled
				hwm := procStatusKiB("VmHWM")

				const mib = 1 << 20
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(float64(base.objects)/mib, "heap-base-MiB")
				b.ReportMetric(float64(peak)/mib, "heap-peak-MiB")
				b.ReportMetric(float64(peakLive)/mib, "live-peak-MiB")
				b.ReportMetric(float64(peakTotal)/mib, "go-mapped-peak-MiB")
				if hwmReset {
					b.ReportMetric(float64(rssBase)/1024, "rss-base-MiB")
					b.ReportMetric(float64(hwm)/1024, "rss-peak-MiB")
				}
				b.ReportMetric(float64(maxInFlight), "max-in-flight")
				b.ReportMetric(float64(maxWaiting), "max-waiting")
				b.ReportMetric(float64(ok.Load()), "ok")
				b.ReportMetric(float64(busy.Load()), "503")
				b.ReportMetric(float64(other.Load()), "other")
				b.ReportMetric(elapsed.Seconds(), "burst-s")
				if !hwmReset {
					b.Logf("could not reset VmHWM; rss-peak not reported")
				}
			}
		})
	}
}

type heapSample struct{ objects, total, live uint64 }

var heapMetrics = []string{"/memory/classes/heap/objects:bytes", "/memory/classes/total:bytes", "/gc/heap/live:bytes"}

// readHeap reads the heap's objects (live and not yet swept), all the memory
// the Go runtime has mapped, and the live heap found by the last GC, without
// stopping the world.
func readHeap() heapSample {
	s := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	return heapSample{objects: s[0].Value.Uint64(), total: s[1].Value.Uint64(), live: s[2].Value.Uint64()}
}

// procStatusKiB returns a "kB" field of /proc/self/status (0 when absent).
func procStatusKiB(field string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
