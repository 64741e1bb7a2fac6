package web

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestLastDay(t *testing.T) {
	// --temporary-until 2027-06-30 ends at the next midnight, local time.
	end := time.Date(2027, 7, 1, 0, 0, 0, 0, time.Local)
	if got := LastDay(end); got != "30/06/2027" {
		t.Fatalf("LastDay = %q, want 30/06/2027", got)
	}
}

func TestMaskEmail(t *testing.T) {
	cases := map[string]string{
		"jean.dupont@univ.example": "j•••@univ.example",
		"j@univ.example":           "•••@univ.example", // one letter would be the whole local part
		"nonsense":                 "•••",
	}
	for in, want := range cases {
		if got := MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClockTimeUpNeverEarly(t *testing.T) {
	at := time.Date(2026, 11, 23, 14, 4, 1, 0, time.Local)
	if got := ClockTimeUp(at); got != "14:05" {
		t.Fatalf("ClockTimeUp(14:04:01) = %s, want 14:05", got)
	}
	if got := ClockTimeUp(at.Truncate(time.Minute)); got != "14:04" {
		t.Fatalf("ClockTimeUp(14:04:00) = %s, want 14:04", got)
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	w := httptest.NewRecorder()
	RetryAfter(w, 1500*time.Millisecond)
	if got := w.Header().Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After %s, want 2", got)
	}
	RetryAfter(w, 0)
	if got := w.Header().Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After %s, want at least 1", got)
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]bool{
		"/account": true, "/oidc/continue?id=x": true, "": false, "account": false, "//evil.example": false,
		"/\\evil.example": false, "https://evil.example/": false, "/a\nb": false,
	} {
		if LocalPath(in) != want {
			t.Errorf("LocalPath(%q) = %v, want %v", in, !want, want)
		}
	}
}
