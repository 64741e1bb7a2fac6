// Package browsertest drives a headless Chromium from Go tests, to check
// campusid pages the way a person uses them: fill a form, press Tab, read
// the text, look at the cookies, take screenshots.
//
// Each test gets its own browser with a fresh profile:
//
//	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
//	b.Go(srv.URL + "/login")
//	b.Fill(`input[autocomplete="username"]`, "ada@example.org")
//	b.Click(`button[type="submit"]`)
//	b.WaitText("Mot de passe")
//
// Every helper has a time limit (20 s by default, see WithTimeout), so a
// broken page fails the test instead of hanging it. On a failure the helper
// takes a screenshot named "failure" and calls t.Fatalf with the current URL
// and the start of the page text.
//
// The browser binary is $CAMPUSID_TEST_CHROMIUM, else /usr/bin/chromium, else
// chromium in PATH. Without one the test is skipped, or fails when
// CAMPUSID_TEST_REQUIRE_ALL=1 (see package testenv). Screenshots go to
// $CAMPUSID_TEST_ARTIFACTS/screenshots/<TestName>/, by default under the
// folder "artifacts" at the root of the module.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"campusid/internal/testenv"
)

// Environment variables read by the package.
const (
	// EnvChromium names the Chromium binary to run.
	EnvChromium = "CAMPUSID_TEST_CHROMIUM"
	// EnvArtifacts names the folder that receives the screenshots.
	EnvArtifacts = "CAMPUSID_TEST_ARTIFACTS"
)

// DefaultTimeout is the time limit of one helper call (one action).
const DefaultTimeout = 20 * time.Second

// defaultChromium is where Debian's chromium package installs its launcher.
const defaultChromium = "/usr/bin/chromium"

// missingHow is the advice given when no Chromium is found.
const missingHow = "install Debian's chromium package (apt-get install chromium) or set " + EnvChromium

// Viewports. The desktop size is also the --window-size of the browser.
const (
	desktopWidth, desktopHeight = 1280, 900
	mobileWidth, mobileHeight   = 390, 844
	mobileScale                 = 3
	mobileUA                    = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// navGrace is how long Click and Press wait for a navigation to start after
// the input event. Measured here, a submit starts its navigation before the
// input command returns or within a millisecond. A navigation that a script
// starts later (after a fetch, say) is not waited for: use WaitText then.
const navGrace = 100 * time.Millisecond

// Option changes how New starts the browser.
type Option func(*config)

type config struct {
	lang    string
	mobile  bool
	timeout time.Duration
}

// WithLang sets the language of the browser: the --lang flag, the
// Accept-Language header and navigator.language, for example "fr-FR" or
// "en-US". Without it the browser uses "en-US", whatever the machine's locale.
func WithLang(lang string) Option { return func(c *config) { c.lang = lang } }

// WithMobile makes the browser a phone: a 390x844 viewport at 3x, touch
// events and a mobile (iPhone Safari) user agent.
func WithMobile() Option { return func(c *config) { c.mobile = true } }

// WithTimeout sets the time limit of each helper call (DefaultTimeout unless
// set). Starting the browser has its own, longer limit.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// Browser is one headless Chromium with one tab, owned by one test. Its
// methods must be called from the test's goroutine.
type Browser struct {
	t       testing.TB
	ctx     context.Context // the chromedp context of the tab
	timeout time.Duration

	mu      sync.Mutex
	console []string // console errors, exceptions and error log entries

	failing bool // set while reporting a failure, so it does not recurse
}

// New starts a headless Chromium for this test, with a fresh profile in
// t.TempDir(), and closes it at t.Cleanup. When no Chromium is found it calls
// testenv.Missing, which skips the test or fails it under
// CAMPUSID_TEST_REQUIRE_ALL=1; New then returns nil (a real testing.T never
// gets there, as Skip and Fatal end the test).
func New(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	cfg := config{lang: "en-US", timeout: DefaultTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	bin, err := findChromium(os.Getenv, exec.LookPath)
	if err != nil {
		testenv.Missing(t, "Chromium", err.Error()+"; "+missingHow)
		return nil
	}
	return start(t, bin, cfg)
}

// findChromium returns the browser binary to run: $CAMPUSID_TEST_CHROMIUM
// when set (and then only it: a wrong setting is an error, not a fallback),
// else /usr/bin/chromium, else chromium in PATH.
func findChromium(getenv func(string) string, lookPath func(string) (string, error)) (string, error) {
	if p := getenv(EnvChromium); p != "" {
		found, err := lookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s is not an executable: %w", EnvChromium, p, err)
		}
		return found, nil
	}
	if found, err := lookPath(defaultChromium); err == nil {
		return found, nil
	}
	if found, err := lookPath("chromium"); err == nil {
		return found, nil
	}
	return "", fmt.Errorf("no %s and no chromium in PATH", defaultChromium)
}

// allocatorOptions builds the command line of the browser. The list is
// explicit on purpose: chromedp.DefaultExecAllocatorOptions carries flags that
// this package does not want (enable-features, safebrowsing and metrics
// switches). chromedp itself adds --remote-debugging-pipe and about:blank.
//
// The XDG folders point into the profile too: without them Chromium keeps its
// crash database in ~/.config/chromium, outside the test's folder.
func allocatorOptions(bin, profile string, cfg config) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Env(
			"XDG_CONFIG_HOME="+filepath.Join(profile, "xdg-config"),
			"XDG_CACHE_HOME="+filepath.Join(profile, "xdg-cache"),
		),
		// With Chromium 132 and later, --headless is the new headless mode
		// (the old one is a separate binary, chrome-headless-shell).
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // CI runs as root, where the sandbox cannot start
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("user-data-dir", profile),
		chromedp.Flag("window-size", fmt.Sprintf("%d,%d", desktopWidth, desktopHeight)),
		chromedp.Flag("lang", cfg.lang),
	}
}

// startTimeout limits the start of the browser and the set-up of its tab.
const startTimeout = 60 * time.Second

func start(t testing.TB, bin string, cfg config) *Browser {
	t.Helper()
	profile := t.TempDir()

	var output bytes.Buffer // what the browser printed, shown if it fails to start
	var outputMu sync.Mutex
	allocOpts := append(allocatorOptions(bin, profile, cfg),
		chromedp.CombinedOutput(lockedWriter{&outputMu, &output}))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)

	b := &Browser{t: t, timeout: cfg.timeout}
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithListener(b.onEvent))
	b.ctx = ctx

	closeAll := func() {
		// Close Chromium gracefully, then make sure that no process of it
		// still writes in the profile, which t.TempDir removes next.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = chromedp.Cancel(cctx)
		cancel()
		cancelCtx()
		cancelAlloc()
		killProfileProcesses(profile)
	}

	// The first action starts the browser and binds its life to the context
	// given, so it gets no deadline: the time limit is enforced from here.
	began := time.Now()
	done := make(chan error, 1)
	go func() { done <- b.setUp(ctx, cfg) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(startTimeout):
		err = fmt.Errorf("no answer after %v", startTimeout)
	}
	if err != nil {
		closeAll()
		outputMu.Lock()
		out := output.String()
		outputMu.Unlock()
		t.Fatalf("browsertest: starting %s: %v\nbrowser output:\n%s", bin, err, clip(out, 4000))
	}
	t.Cleanup(closeAll)
	if testing.Verbose() {
		t.Logf("browsertest: %s started in %v", bin, time.Since(began).Round(time.Millisecond))
	}
	return b
}

// setUp starts the browser and sets the language, the viewport and the user
// agent of its tab.
func (b *Browser) setUp(ctx context.Context, cfg config) error {
	if err := chromedp.Do(ctx); err != nil {
		return err
	}
	version, err := chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
	if err != nil {
		return err
	}
	ua := version.UserAgent
	if cfg.mobile {
		ua = mobileUA
	}
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
		UserAgent:      ua,
		AcceptLanguage: cfg.lang,
	}); err != nil {
		return err
	}
	if _, err := chromedp.Call(ctx, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{
		Locale: strings.ReplaceAll(cfg.lang, "-", "_"),
	}); err != nil {
		return err
	}
	if cfg.mobile {
		return chromedp.Do(ctx, chromedp.EmulateViewport(mobileWidth, mobileHeight,
			chromedp.EmulateScale(mobileScale), chromedp.EmulateMobile, chromedp.EmulateTouch,
			chromedp.EmulatePortrait))
	}
	return chromedp.Do(ctx, chromedp.EmulateViewport(desktopWidth, desktopHeight))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() > 1<<20 {
		return len(p), nil // enough to diagnose a start failure
	}
	return l.w.Write(p)
}

// killProfileProcesses kills what is left of a browser that used profile:
// child processes, and the crash handler, whose database is in the profile,
// can outlive the main process and keep writing there. It reads /proc, so it
// does nothing where there is none.
func killProfileProcesses(profile string) {
	want := []byte(profile + string(filepath.Separator))
	flag := []byte("--user-data-dir=" + profile)
	deadline := time.Now().Add(2 * time.Second)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		found := 0
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
				if bytes.Equal(arg, flag) || bytes.Contains(arg, want) {
					if p, err := os.FindProcess(pid); err == nil {
						_ = p.Kill()
					}
					found++
					break
				}
			}
		}
		if found == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// onEvent runs in the event loop of the tab (see chromedp.WithListener): it
// must be quick and must not send commands.
func (b *Browser) onEvent(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + exceptionText(ev.ExceptionDetails)
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		msg = "console." + string(ev.Type) + ": " + argsText(ev.Args) + stackPlace(ev.StackTrace)
	case *cdplog.EventEntryAdded:
		if ev.Entry == nil || ev.Entry.Level != cdplog.EntryLevelError {
			return
		}
		msg = "log (" + string(ev.Entry.Source) + "): " + ev.Entry.Text
		if ev.Entry.URL != "" {
			msg += " (" + ev.Entry.URL + ")"
		}
	default:
		return
	}
	b.mu.Lock()
	b.console = append(b.console, msg)
	b.mu.Unlock()
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "?"
	}
	text := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		// The description holds the error and its stack; keep the first line.
		desc, _, _ := strings.Cut(d.Exception.Description, "\n")
		text += " " + desc
	}
	if d.URL != "" {
		text += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
	}
	return text
}

func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		var s string
		switch {
		case a.Type == runtime.RemoteObjectTypeString && len(a.Value) > 0:
			if err := json.Unmarshal(a.Value, &s); err != nil {
				s = string(a.Value)
			}
		case a.Description != "":
			s = a.Description
		case len(a.Value) > 0:
			s = string(a.Value)
		default:
			s = string(a.UnserializableValue)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func stackPlace(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 || st.CallFrames[0].URL == "" {
		return ""
	}
	f := st.CallFrames[0]
	return fmt.Sprintf(" (%s:%d)", f.URL, f.LineNumber+1)
}

// ConsoleErrors returns what the page reported as errors since the browser
// started, in order: uncaught exceptions and promise rejections
// ("exception: ..."), console.error and failed console.assert calls
// ("console.error: ..."), and browser log entries of level error, which
// include Content-Security-Policy violations ("log (security): ...") and
// failed loads ("log (network): ...").
func (b *Browser) ConsoleErrors() []string {
	b.t.Helper()
	// A round trip to the tab: the events that arrived before its answer
	// have been handled by onEvent when it returns.
	b.run("flush console", chromedp.Evaluate[chromedp.Void](`0`))
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// run runs one action with the time limit, and fails the test on an error.
func (b *Browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// value runs one action that returns a value, with the time limit.
func value[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail("%s: %v", what, err)
	}
	return v
}

// fail takes a "failure" screenshot and ends the test with the URL and the
// beginning of the page text.
func (b *Browser) fail(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if b.failing {
		b.t.Fatalf("browsertest: %s", msg)
		return
	}
	b.failing = true
	url, text := b.describePage()
	if shot, err := b.screenshot("failure", 5*time.Second); err != nil {
		b.t.Logf("browsertest: no failure screenshot: %v", err)
	} else {
		b.t.Logf("browsertest: failure screenshot: %s", shot)
	}
	b.t.Fatalf("browsertest: %s\nURL: %s\npage text:\n%s", msg, url, clip(text, 2000))
}

// describePage returns the URL and the text of the page, without failing.
func (b *Browser) describePage() (url, text string) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	url, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		url = "(unknown: " + err.Error() + ")"
	}
	text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		text = "(unknown: " + err.Error() + ")"
	}
	return url, text
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "\n[... " + strconv.Itoa(len(s)-cut) + " more bytes]"
}

func utf8Start(c byte) bool { return c&0xC0 != 0x80 }

// Go navigates to url and waits for the page to load.
func (b *Browser) Go(url string) {
	b.t.Helper()
	b.run("go to "+url, chromedp.Navigate(url))
}

// URL returns the address of the current page.
func (b *Browser) URL() string {
	b.t.Helper()
	return value(b, "read the URL", chromedp.Location())
}

// Fill clears the field that matches the CSS selector sel, then types value
// into it with key events, as a person would.
func (b *Browser) Fill(sel, value string) {
	b.t.Helper()
	b.run("fill "+sel,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](`(() => {
			const el = document.querySelector(`+jsString(sel)+`);
			el.focus();
			el.value = "";
			el.dispatchEvent(new Event("input", {bubbles: true}));
		})()`),
		chromedp.SendKeys(chromedp.CSS(sel), value),
	)
}

// Click clicks the element that matches sel with the mouse. When the click
// starts a navigation (a link, a submit button), Click waits until the new
// page has loaded.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.withNavigation("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// Submit submits the form that contains the element sel (as form.submit()
// would, with no click and no validation) and waits for the new page.
func (b *Browser) Submit(sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Submit(chromedp.CSS(sel))); err != nil {
		b.fail("submit the form of %s: %v", sel, err)
	}
}

// Press sends one key to the focused element: a printable character such as
// "a", or a key name such as "Tab", "Enter", "Escape", "Space", "Backspace",
// "ArrowDown", with optional modifiers such as "Shift+Tab". When the key
// starts a navigation (Enter in a form), Press waits for the new page.
func (b *Browser) Press(key string) {
	b.t.Helper()
	keys, mods, err := parseKey(key)
	if err != nil {
		b.fail("press %q: %v", key, err)
	}
	var opts []chromedp.KeyOption
	if len(mods) > 0 {
		opts = append(opts, chromedp.KeyModifiers(mods...))
	}
	b.withNavigation("press "+key, chromedp.KeyEvent(keys, opts...))
}

// parseKey turns "Shift+Tab" into the kb string and modifiers of KeyEvent.
func parseKey(key string) (string, []chromedp.Modifier, error) {
	var mods []chromedp.Modifier
	for {
		prefix, rest, ok := strings.Cut(key, "+")
		if !ok || rest == "" {
			break
		}
		switch strings.ToLower(prefix) {
		case "shift":
			mods = append(mods, chromedp.ModifierShift)
		case "ctrl", "control":
			mods = append(mods, chromedp.ModifierCtrl)
		case "alt":
			mods = append(mods, chromedp.ModifierAlt)
		case "meta", "cmd":
			mods = append(mods, chromedp.ModifierMeta)
		default:
			return "", nil, fmt.Errorf("unknown modifier %q", prefix)
		}
		key = rest
	}
	if key == "Space" {
		return " ", mods, nil
	}
	if r := []rune(key); len(r) == 1 {
		return key, mods, nil
	}
	var found []rune
	for r, k := range kb.Keys {
		if k.Key == key {
			found = append(found, r)
		}
	}
	if len(found) == 0 {
		return "", nil, fmt.Errorf("unknown key %q", key)
	}
	sort.Slice(found, func(i, j int) bool { return found[i] < found[j] })
	return string(found[0]), mods, nil
}

// withNavigation runs an input action. If the main frame starts to load a
// new document within navGrace after it, it waits until that document has
// loaded (or the navigation ended without one, as with a 204 answer).
func (b *Browser) withNavigation(what string, action chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()

	var (
		mu       sync.Mutex
		mainID   cdp.FrameID
		started  = make(chan struct{})
		finished = make(chan struct{})
		isStart  bool
		isDone   bool
	)
	markStart := func() {
		if !isStart {
			isStart = true
			close(started)
		}
	}
	markDone := func() {
		if isStart && !isDone {
			isDone = true
			close(finished)
		}
	}
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	err := chromedp.Listen(lctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *page.EventFrameRequestedNavigation:
			if mainID == "" || ev.FrameID == mainID {
				mainID = ev.FrameID
				markStart()
			}
		case *page.EventFrameStartedLoading:
			if mainID == "" || ev.FrameID == mainID {
				mainID = ev.FrameID
				markStart()
			}
		case *page.EventFrameStoppedLoading:
			if ev.FrameID == mainID {
				markDone()
			}
		case *page.EventNavigatedWithinDocument:
			if ev.FrameID == mainID || mainID == "" {
				mainID = ev.FrameID
				markStart()
				markDone()
			}
		}
	})
	if err != nil {
		b.fail("%s: %v", what, err)
	}
	// Only the main frame counts: learn its id before the action.
	if id := b.mainFrameID(ctx); id != "" {
		mu.Lock()
		mainID = id
		mu.Unlock()
	}
	if err := chromedp.Do(ctx, action); err != nil {
		b.fail("%s: %v", what, err)
	}
	select {
	case <-started:
	case <-time.After(navGrace):
		return
	case <-ctx.Done():
		b.fail("%s: %v", what, ctx.Err())
	}
	select {
	case <-finished:
	case <-ctx.Done():
		b.fail("%s: the page did not finish loading: %v", what, ctx.Err())
	}
}

func (b *Browser) mainFrameID(ctx context.Context) cdp.FrameID {
	res, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil || res.FrameTree == nil || res.FrameTree.Frame == nil {
		return ""
	}
	return res.FrameTree.Frame.ID
}

// Text returns the visible text (innerText) of the first element that
// matches sel, waiting for the element to exist.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return value(b, "read the text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// HasText reports whether the visible text of the page contains s. It does
// not wait.
func (b *Browser) HasText(s string) bool {
	b.t.Helper()
	return strings.Contains(b.bodyText(), s)
}

func (b *Browser) bodyText() string {
	b.t.Helper()
	return value(b, "read the page text",
		chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
}

// WaitText waits until the visible text of the page contains s, and fails
// the test, showing the page text, when the time limit passes first.
func (b *Browser) WaitText(s string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	expr := `document.body && document.body.innerText.includes(` + jsString(s) + `)`
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond)))
		if err == nil {
			return
		}
		// A page that navigates by itself (a form a script submits) destroys
		// the context being polled: poll the next document.
		if ctx.Err() == nil && navigatedAway(err) {
			continue
		}
		b.fail("wait for the text %q: %v", s, err)
	}
}

func navigatedAway(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Cannot find context with specified id") || strings.Contains(msg, "Execution context was destroyed") ||
		strings.Contains(msg, "Inspected target navigated or closed")
}

// Attr returns the attribute name of the first element that matches sel
// (waiting for the element to exist), or "" when it has no such attribute.
func (b *Browser) Attr(sel, name string) string {
	b.t.Helper()
	return value(b, "read the attribute "+name+" of "+sel,
		chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

// Count returns how many elements match sel now. It does not wait.
func (b *Browser) Count(sel string) int {
	b.t.Helper()
	return value(b, "count "+sel,
		chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(sel)+`).length`))
}

// Eval evaluates the JavaScript expression js in the page (awaiting it when
// it is a promise), and decodes its JSON value into out, unless out is nil.
func (b *Browser) Eval(js string, out any) {
	b.t.Helper()
	raw := value(b, "evaluate "+clip(js, 200),
		chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if out == nil {
		return
	}
	if err := json.Unmarshal(raw, out); err != nil {
		b.fail("decode the result of %s (%s): %v", clip(js, 200), clip(string(raw), 200), err)
	}
}

// Focused describes document.activeElement as tag#id[name=N][autocomplete=A],
// leaving out the parts that the element does not have; for example
// `input#email[name=email][autocomplete=username]`, `button#go`, or `body`
// when nothing has the focus.
func (b *Browser) Focused() string {
	b.t.Helper()
	return value(b, "describe the focused element", chromedp.Evaluate[string](`(() => {
		const el = document.activeElement;
		if (!el) return "";
		let s = el.tagName.toLowerCase();
		if (el.id) s += "#" + el.id;
		const name = el.getAttribute("name");
		if (name) s += "[name=" + name + "]";
		const ac = el.getAttribute("autocomplete");
		if (ac) s += "[autocomplete=" + ac + "]";
		return s;
	})()`))
}

// Cookies returns the cookies that the browser would send to the current
// page, with their flags: HttpOnly, Secure, SameSite (left at 0 when the
// cookie did not set one) and Expires (zero for a session cookie).
func (b *Browser) Cookies() []*http.Cookie {
	b.t.Helper()
	res := value(b, "read the cookies", func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{})
	})
	out := make([]*http.Cookie, 0, len(res.Cookies))
	for _, c := range res.Cookies {
		hc := &http.Cookie{
			Name:     c.Name,
			Value:    c.Value,
			Domain:   c.Domain,
			Path:     c.Path,
			HttpOnly: c.HTTPOnly,
			Secure:   c.Secure,
		}
		if !c.Session && c.Expires > 0 {
			sec, frac := math.Modf(c.Expires)
			hc.Expires = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		}
		switch c.SameSite {
		case network.CookieSameSiteStrict:
			hc.SameSite = http.SameSiteStrictMode
		case network.CookieSameSiteLax:
			hc.SameSite = http.SameSiteLaxMode
		case network.CookieSameSiteNone:
			hc.SameSite = http.SameSiteNoneMode
		}
		out = append(out, hc)
	}
	return out
}

// Screenshot saves a PNG of the whole page (not only the viewport) as
// <artifacts>/screenshots/<TestName>/<NN>-<name>.png, where NN counts the
// screenshots of the test from 01, and logs the path.
func (b *Browser) Screenshot(name string) {
	b.t.Helper()
	path, err := b.screenshot(name, b.timeout)
	if err != nil {
		b.fail("screenshot %q: %v", name, err)
	}
	b.t.Logf("browsertest: screenshot %s", path)
}

var shots struct {
	sync.Mutex
	count map[string]int // screenshots taken so far, by folder
}

func (b *Browser) screenshot(name string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, fullPagePNG)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(artifactsDir(), "screenshots", testDir(b.t.Name()))

	shots.Lock()
	defer shots.Unlock()
	if shots.count == nil {
		shots.count = map[string]int{}
	}
	if _, seen := shots.count[dir]; !seen {
		// A new run of this test: drop the screenshots of an earlier run,
		// so that the numbers in the folder tell this run's order. Only
		// the files of this folder go: subtests have their own folders.
		old, _ := filepath.Glob(filepath.Join(dir, "*.png"))
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	shots.count[dir]++
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%02d-%s.png", shots.count[dir], safeName(name)))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// fullPagePNG captures the whole scrollable page.
func fullPagePNG(ctx context.Context, t *chromedp.Target) ([]byte, error) {
	m, err := cdp.Call(ctx, t, page.GetLayoutMetrics, cdp.Empty{})
	if err != nil {
		return nil, err
	}
	params := page.CaptureScreenshotParams{
		Format:                page.CaptureScreenshotFormatPng,
		FromSurface:           new(true),
		CaptureBeyondViewport: new(true),
	}
	if s := m.CSSContentSize; s != nil && s.Width > 0 && s.Height > 0 {
		params.Clip = &page.Viewport{Width: math.Ceil(s.Width), Height: math.Ceil(s.Height), Scale: 1}
	}
	res, err := cdp.Call(ctx, t, page.CaptureScreenshot, params)
	if err != nil {
		return nil, err
	}
	// cdproto has already decoded the base64 of the protocol.
	if !bytes.HasPrefix(res.Data, pngMagic) {
		return nil, errors.New("the browser did not return a PNG image")
	}
	return res.Data, nil
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string {
	s = unsafeChars.ReplaceAllString(s, "_")
	if s == "" || s == "." || s == ".." {
		s = "_"
	}
	return s
}

// testDir maps a test name to a folder: one level per subtest.
func testDir(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = safeName(p)
	}
	return filepath.Join(parts...)
}

// artifactsDir is $CAMPUSID_TEST_ARTIFACTS, else the folder "artifacts" at
// the root of the module (the nearest folder above the working directory
// with a go.mod), else "artifacts" in the system's temporary folder.
func artifactsDir() string {
	if d := os.Getenv(EnvArtifacts); d != "" {
		return d
	}
	if wd, err := os.Getwd(); err == nil {
		if root := moduleRoot(wd); root != "" {
			return filepath.Join(root, "artifacts")
		}
	}
	return filepath.Join(os.TempDir(), "campusid-artifacts")
}

// moduleRoot returns the nearest folder from dir upwards that holds a
// go.mod file, or "".
func moduleRoot(dir string) string {
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}
