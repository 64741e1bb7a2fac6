package audit

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBound(t *testing.T) {
	if got := bound("short"); got != "short" {
		t.Fatalf("short value changed: %q", got)
	}
	long := strings.Repeat("a", maxDetail-1) + "é" + strings.Repeat("b", 100) // é straddles the limit
	got := bound(long)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || len(got) > maxDetail+len("…") {
		t.Fatalf("bound: %d bytes, valid %v, %q", len(got), utf8.ValidString(got), got[len(got)-8:])
	}
}
