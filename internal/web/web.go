// Package web renders campusid's pages and holds the HTTP plumbing every
// page package shares: the renderer, the error-to-page mapping, request
// metadata (id, client address, language) and the middleware chain.
package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"campusid/internal/i18n"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Viewer is the signed-in person, shown in the header of every page.
type Viewer struct {
	Name       string
	Identifier string
}

// Page is what every template receives; Data is the page's own typed struct.
type Page struct {
	L       i18n.Localizer
	Lang    string
	Title   string // message key
	Viewer  *Viewer
	Path    string // path and query of this page, for the language switcher
	Notice  string // message key of a confirmation shown at the top
	Error   string // localized error shown at the top of the form
	Support Support
	Data    any
}

// Support is the help contact shown on error pages.
type Support struct{ Email, URL string }

// Renderer holds the parsed templates: one set per page, each with the layout.
type Renderer struct {
	pages map[string]*template.Template
}

// NewRenderer parses every page with the layout. Files in overrideDir (when
// not empty) replace the embedded ones of the same name: the university's
// branding. A broken template stops the start.
func NewRenderer(overrideDir string) (*Renderer, error) {
	var src fs.FS = templateFS
	if overrideDir != "" {
		src = overlay{dir: os.DirFS(overrideDir), base: templateFS}
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	r := &Renderer{pages: map[string]*template.Template{}}
	for _, n := range names {
		base := strings.TrimSuffix(filepath.Base(n), ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(src, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", base, err)
		}
		r.pages[base] = t
	}
	return r, nil
}

type overlay struct {
	dir  fs.FS
	base fs.FS
}

func (o overlay) Open(name string) (fs.File, error) {
	if f, err := o.dir.Open(strings.TrimPrefix(name, "templates/")); err == nil {
		return f, nil
	}
	return o.base.Open(name)
}

var funcs = template.FuncMap{
	"lastday": LastDay,
	"datetime": func(l i18n.Localizer, t time.Time) string {
		if l.Lang == "en" {
			return t.Local().Format("2 Jan 2006, 15:04")
		}
		return t.Local().Format("02/01/2006 à 15:04")
	},
}

// Static serves the embedded static files (CSS, the small scripts).
func Static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	fsrv := http.FileServerFS(sub)
	return http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	}))
}

// App joins the renderer to what every page needs.
type App struct {
	R           *Renderer
	Log         *slog.Logger
	DefaultLang string
	Support     Support
	// Viewer returns the signed-in person of a request, or nil.
	Viewer func(*http.Request) *Viewer
}

// Render writes page name with status; the layout fields of p are filled here.
func (a *App) Render(w http.ResponseWriter, r *http.Request, status int, name string, p Page) error {
	t, ok := a.R.pages[name]
	if !ok {
		return fmt.Errorf("web: no template %q", name)
	}
	info := Info(r.Context())
	p.Lang = info.Lang
	p.L = i18n.Localizer{Lang: info.Lang}
	p.Path = r.URL.RequestURI()
	p.Support = a.Support
	if p.Viewer == nil && a.Viewer != nil {
		p.Viewer = a.Viewer(r)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		return fmt.Errorf("web: render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// Error is an error with the page to show: status and a message key.
type Error struct {
	Status     int
	Key        string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Key, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Key)
}

func (e *Error) Unwrap() error { return e.Err }

// NotFound is the error of an unknown page or object.
func NotFound() error { return &Error{Status: http.StatusNotFound, Key: "error.not_found"} }

// BadRequest is the error of a malformed request, with the message key to show.
func BadRequest(key string) error { return &Error{Status: http.StatusBadRequest, Key: key} }

// Busy is the error of a server too loaded to answer now (503 + Retry-After).
func Busy(err error) error {
	return &Error{Status: http.StatusServiceUnavailable, Key: "error.busy", RetryAfter: 5 * time.Second, Err: err}
}

// HandlerFunc is a handler that returns its error instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle turns a HandlerFunc into an http.Handler; errors become pages.
func (a *App) Handle(fn HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			a.Fail(w, r, err)
		}
	})
}

// Fail shows the error page for err and logs the detail with the request
// id. Internals are never shown.
func (a *App) Fail(w http.ResponseWriter, r *http.Request, err error) {
	info := Info(r.Context())
	var we *Error
	if !errors.As(err, &we) {
		we = &Error{Status: http.StatusInternalServerError, Key: "error.internal", Err: err}
	}
	level := slog.LevelInfo
	if we.Status >= 500 {
		level = slog.LevelError
	}
	a.Log.Log(r.Context(), level, "request failed", "request_id", info.RequestID, "status", we.Status,
		"path", r.URL.Path, "error", err.Error())
	if we.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(we.RetryAfter.Seconds())))
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	rerr := a.Render(w, r, we.Status, "error", Page{Title: "error.title", Data: ErrorData{Key: we.Key, RequestID: info.RequestID}})
	if rerr != nil {
		a.Log.Error("render error page", "request_id", info.RequestID, "error", rerr.Error())
		http.Error(w, http.StatusText(we.Status), we.Status)
	}
}

// ErrorData is the data of the error page.
type ErrorData struct {
	Key       string
	RequestID string
}

// Redirect sends the browser to a path of this server (303 after a POST).
func Redirect(w http.ResponseWriter, r *http.Request, target string) error {
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}
