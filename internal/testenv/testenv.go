// Package testenv decides what a test does when something it needs from the
// machine (PostgreSQL, Chromium) is missing: on a laptop it skips with a
// message saying how to enable it; with CAMPUSID_TEST_REQUIRE_ALL=1 (set by
// .ci/run) the skip becomes a failure, so CI always runs everything.
package testenv

import (
	"os"
	"testing"
)

// RequireAll reports whether every optional dependency must be present.
func RequireAll() bool { return os.Getenv("CAMPUSID_TEST_REQUIRE_ALL") == "1" }

// Missing skips the test, or fails it under CAMPUSID_TEST_REQUIRE_ALL=1.
// what names the missing thing; how says how to enable it.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if RequireAll() {
		t.Fatalf("%s is required (CAMPUSID_TEST_REQUIRE_ALL=1) but missing: %s", what, how)
	}
	t.Skipf("%s not available; %s", what, how)
}
