package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestConfigurationDocIsCurrent keeps docs/configuration.md in step with the
// keys the code knows: regenerate the table with `campusid config keys`.
func TestConfigurationDocIsCurrent(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out}
	if code := run(context.Background(), e, []string{"config", "keys"}); code != 0 {
		t.Fatalf("config keys exited %d: %s", code, out.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !bytes.Contains(doc, []byte(line)) {
			t.Errorf("docs/configuration.md lacks or differs on:\n%s\n(regenerate the table with: go run ./cmd/campusid config keys)", line)
		}
	}
}

// TestReadmeCommands keeps the README's two promised commands, which .ci/run relies on.
func TestReadmeCommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"go run ./cmd/campusid serve", "go test ./..."} {
		if !bytes.Contains(readme, []byte("\n"+cmd+"\n")) {
			t.Errorf("README.md no longer shows %q on a line of its own", cmd)
		}
	}
	if !bytes.Contains(ci, []byte(`TEST_CMD="go test ./..."`)) {
		t.Errorf(".ci/run does not run the README's test command")
	}
}
