package web

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// RetryAfter sets the Retry-After header of a 429 or 503 (whole seconds, at least 1).
func RetryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", fmt.Sprint(max(int(math.Ceil(wait.Seconds())), 1)))
}

// ClockTime says a time of day as pages and mails show it ("14:03").
func ClockTime(t time.Time) string { return t.Local().Format("15:04") }

// ClockTimeUp says a time of day rounded up to the minute, so "from 14:05"
// is never earlier than the truth.
func ClockTimeUp(t time.Time) string {
	if r := t.Truncate(time.Minute); !r.Equal(t) {
		t = r.Add(time.Minute)
	}
	return ClockTime(t)
}

// LastDay is the last day a temporary account works: it ends at midnight
// after that day (`user add --temporary-until 2027-06-30` ends at 01/07
// 00:00), so people are told "until 30/06/2027".
func LastDay(end time.Time) string { return end.Local().Add(-time.Second).Format("02/01/2006") }

// MaskEmail hides an address but for its first letter and its domain
// (j•••@univ.example), enough for its owner to recognise it.
func MaskEmail(addr string) string {
	at := strings.LastIndex(addr, "@")
	if at < 0 {
		return "•••"
	}
	local := []rune(addr[:at])
	first := ""
	if len(local) > 1 {
		first = string(local[0])
	}
	return first + "•••" + addr[at:]
}
