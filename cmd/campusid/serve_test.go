package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's log and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestServeStartsWithoutConfigAndStopsGracefully runs `campusid serve` as
// a user would (no file, only a free port and a data directory), checks it
// answers, then cancels it like SIGTERM and expects a clean return.
func TestServeStartsWithoutConfigAndStopsGracefully(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	var logs syncBuffer
	e := &env{stdout: &logs, stderr: &logs, now: time.Now,
		environ: []string{"CAMPUSID_LISTEN=" + addr, "CAMPUSID_DATA_DIR=" + dir}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, e, []string{"serve"}) }()

	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get("http://" + addr + "/healthz"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		cancel()
		t.Fatalf("server never answered: %v\n%s", err, logs.String())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	if r, err := http.Get("http://" + addr + "/dev/mail.json"); err != nil || r.StatusCode != 200 {
		t.Fatalf("the development mailbox is not on by default: %v", err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after cancellation")
	}
	out := logs.String()
	for _, want := range []string{"DEVELOPMENT MAILBOX", "migration applied", "shutting down", "stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "campusid.db")); len(matches) != 1 {
		t.Errorf("no SQLite database under the data directory")
	}
}
