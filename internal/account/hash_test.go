package account

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// fastParams keeps tests quick; the bound on concurrency does not depend on
// the cost of one hash.
var fastParams = HashParams{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

func TestDefaultHashParams(t *testing.T) {
	p := DefaultHashParams()
	want := HashParams{Memory: 19456, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	if p != want {
		t.Fatalf("DefaultHashParams() = %+v, want %+v", p, want)
	}
	if err := ValidateHashParams(p); err != nil {
		t.Fatalf("ValidateHashParams(default): %v", err)
	}
}

func TestValidateHashParams(t *testing.T) {
	tests := []struct {
		name  string
		p     HashParams
		wants []string // substrings of the error; none means valid
	}{
		{name: "fast", p: fastParams},
		{name: "eight KiB per lane", p: HashParams{Memory: 32, Iterations: 1, Parallelism: 4, SaltLen: 16, KeyLen: 16}},
		{name: "memory below 8 KiB per lane", p: HashParams{Memory: 31, Iterations: 1, Parallelism: 4, SaltLen: 16, KeyLen: 32}, wants: []string{"memory"}},
		{name: "no iterations", p: HashParams{Memory: 64, Parallelism: 1, SaltLen: 16, KeyLen: 32}, wants: []string{"iterations"}},
		{name: "no parallelism", p: HashParams{Memory: 64, Iterations: 1, SaltLen: 16, KeyLen: 32}, wants: []string{"parallelism"}},
		{name: "short key", p: HashParams{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 15}, wants: []string{"key length"}},
		{name: "short salt", p: HashParams{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 8, KeyLen: 32}, wants: []string{"salt length"}},
		{name: "too much memory", p: HashParams{Memory: 5 << 20, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, wants: []string{"memory"}},
		{name: "every problem at once", p: HashParams{}, wants: []string{"parallelism", "iterations", "salt length", "key length"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateHashParams(tt.p)
			if len(tt.wants) == 0 {
				if err != nil {
					t.Fatalf("ValidateHashParams(%+v) = %v, want nil", tt.p, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateHashParams(%+v) = nil, want an error", tt.p)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestHashFormat(t *testing.T) {
	h := NewHasher(fastParams, 2, time.Second)
	enc, err := h.Hash(t.Context(), "Vq7!r2#Lp9_x")
	if err != nil {
		t.Fatal(err)
	}
	// 16 bytes of salt and 32 of key are 22 and 43 unpadded base64 characters.
	parts := strings.Split(enc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" || parts[3] != "m=64,t=1,p=1" ||
		len(parts[4]) != 22 || len(parts[5]) != 43 {
		t.Fatalf("Hash() = %q, want $argon2id$v=19$m=64,t=1,p=1$<22 chars>$<43 chars>", enc)
	}
	again, err := h.Hash(t.Context(), "Vq7!r2#Lp9_x")
	if err != nil {
		t.Fatal(err)
	}
	if again == enc {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
}

// TestHashReferenceVector checks Verify against a hash computed independently
// of Hash, in the reference implementation's encoding.
func TestHashReferenceVector(t *testing.T) {
	salt := []byte("somesaltsomesalt")
	key := argon2.IDKey([]byte("password"), salt, 1, 64, 1, 32)
	enc := "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$" + b64(key)
	h := NewHasher(fastParams, 1, time.Second)
	ok, rehash, err := h.Verify(t.Context(), enc, "password")
	if err != nil || !ok || rehash {
		t.Fatalf("Verify(reference) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestVerify(t *testing.T) {
	ctx := t.Context()
	current := NewHasher(fastParams, 2, time.Second)
	other := fastParams
	other.Iterations = 2
	older := NewHasher(other, 2, time.Second)
	longerKey := fastParams
	longerKey.KeyLen = 64

	mustHash := func(h *Hasher, pw string) string {
		enc, err := h.Hash(ctx, pw)
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	mustBcrypt := func(pw string) string {
		b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	b2a := mustBcrypt("Legacy1!")
	if !strings.HasPrefix(b2a, "$2a$") {
		t.Fatalf("bcrypt produced %q, want a $2a$ hash", b2a)
	}

	tests := []struct {
		name       string
		encoded    string
		password   string
		ok, rehash bool
	}{
		{name: "round trip", encoded: mustHash(current, "Vq7!r2#Lp9_x"), password: "Vq7!r2#Lp9_x", ok: true},
		{name: "wrong password", encoded: mustHash(current, "Vq7!r2#Lp9_x"), password: "Vq7!r2#Lp9_X"},
		{name: "empty password", encoded: mustHash(current, "Vq7!r2#Lp9_x"), password: ""},
		{name: "unicode round trip", encoded: mustHash(current, "mot de passe élégant 🔑"), password: "mot de passe élégant 🔑", ok: true},
		{name: "other iterations: rehash", encoded: mustHash(older, "Vq7!r2#Lp9_x"), password: "Vq7!r2#Lp9_x", ok: true, rehash: true},
		{name: "other iterations, wrong password: no rehash", encoded: mustHash(older, "Vq7!r2#Lp9_x"), password: "nope"},
		{name: "other key length: rehash", encoded: mustHash(NewHasher(longerKey, 1, time.Second), "Vq7!r2#Lp9_x"), password: "Vq7!r2#Lp9_x", ok: true, rehash: true},
		{name: "bcrypt 2a: rehash", encoded: b2a, password: "Legacy1!", ok: true, rehash: true},
		{name: "bcrypt 2b: rehash", encoded: "$2b$" + b2a[4:], password: "Legacy1!", ok: true, rehash: true},
		{name: "bcrypt 2y: rehash", encoded: "$2y$" + b2a[4:], password: "Legacy1!", ok: true, rehash: true},
		{name: "bcrypt wrong password", encoded: b2a, password: "Legacy1?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := current.Verify(ctx, tt.encoded, tt.password)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tt.ok || rehash != tt.rehash {
				t.Fatalf("Verify() = ok %v, needsRehash %v; want %v, %v", ok, rehash, tt.ok, tt.rehash)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	salt, key := b64([]byte("somesaltsomesalt")), b64(make([]byte, 32))
	bc, err := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, encoded string }{
		{"empty", ""},
		{"plain text", "hunter2"},
		{"unknown scheme", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"scheme only", "$argon2id$"},
		{"missing key", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"extra field", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$x"},
		{"old version", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"params out of order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"param not a number", "$argon2id$v=19$m=x,t=1,p=1$" + salt + "$" + key},
		{"negative param", "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key},
		{"extra param", "$argon2id$v=19$m=64,t=1,p=1,k=2$" + salt + "$" + key},
		{"zero parallelism", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"parallelism over 255", "$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key},
		{"zero iterations", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"absurd iterations", "$argon2id$v=19$m=64,t=101,p=1$" + salt + "$" + key},
		{"absurd memory", "$argon2id$v=19$m=4194305,t=1,p=1$" + salt + "$" + key},
		{"memory overflows uint32", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key},
		{"memory below 8 KiB per lane", "$argon2id$v=19$m=16,t=1,p=4$" + salt + "$" + key},
		{"salt not base64", "$argon2id$v=19$m=64,t=1,p=1$!!!!$" + key},
		{"padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1$" + b64([]byte("salt")) + "$" + key},
		{"empty key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
		{"short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + b64(make([]byte, 8))},
		{"huge", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("A", 1000)},
		{"bcrypt truncated", string(bc[:59])},
		{"bcrypt too long", string(bc) + "A"},
		{"bcrypt bad cost", "$2b$xx" + string(bc[6:])},
		{"bcrypt absurd cost", "$2b$31" + string(bc[6:])},
		{"bcrypt bad character", string(bc[:59]) + "="},
		{"bcrypt 2x", "$2x$" + string(bc[4:])},
	}
	h := NewHasher(fastParams, 1, time.Second)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(t.Context(), tt.encoded, "x")
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("Verify(%q) error = %v, want ErrMalformedHash", tt.encoded, err)
			}
			if !strings.HasPrefix(err.Error(), "account: ") {
				t.Errorf("error %q lacks the account: prefix", err)
			}
			if ok || rehash {
				t.Errorf("Verify(%q) = %v, %v with an error", tt.encoded, ok, rehash)
			}
		})
	}
}

func TestDummyVerify(t *testing.T) {
	h := NewHasher(fastParams, 1, time.Second)
	var calls atomic.Int64
	h.inSlot = func() { calls.Add(1) }
	if err := h.DummyVerify(t.Context(), "anything"); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Fatalf("DummyVerify took %d slots, want 1", calls.Load())
	}
}

// TestConcurrencyBound counts, from inside the hashing path, how many hashes
// run at once. Without the semaphore, the 32 goroutines overlap far beyond 2.
func TestConcurrencyBound(t *testing.T) {
	const limit = 2
	h := NewHasher(fastParams, limit, time.Minute)
	var running, peak, peakReported atomic.Int64
	h.inSlot = func() {
		n := running.Add(1)
		defer running.Add(-1)
		raise(&peak, n)
		raise(&peakReported, int64(h.InFlight()))
		time.Sleep(5 * time.Millisecond) // keep the slot long enough for others to pile up
	}
	enc, err := h.Hash(t.Context(), "Vq7!r2#Lp9_x")
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var failures atomic.Int64
	for i := range 32 {
		wg.Go(func() {
			var err error
			switch i % 3 {
			case 0:
				_, err = h.Hash(t.Context(), "Vq7!r2#Lp9_x")
			case 1:
				_, _, err = h.Verify(t.Context(), enc, "Vq7!r2#Lp9_x")
			case 2:
				err = h.DummyVerify(t.Context(), "Vq7!r2#Lp9_x")
			}
			if err != nil {
				failures.Add(1)
			}
		})
	}
	wg.Wait()

	if failures.Load() != 0 {
		t.Fatalf("%d calls failed", failures.Load())
	}
	if p := peak.Load(); p != limit {
		t.Fatalf("%d hashes ran at once at the peak, want %d", p, limit)
	}
	if p := peakReported.Load(); p > limit {
		t.Fatalf("InFlight() reported %d, want at most %d", p, limit)
	}
	if h.InFlight() != 0 || h.Waiting() != 0 {
		t.Fatalf("after the burst InFlight() = %d, Waiting() = %d; want 0, 0", h.InFlight(), h.Waiting())
	}
}

func TestBusyAndCancel(t *testing.T) {
	tests := []struct {
		name    string
		maxWait time.Duration
		cancel  bool // cancel the waiting call's context
		want    error
	}{
		{name: "max wait elapses", maxWait: 50 * time.Millisecond, want: ErrBusy},
		{name: "no wait", maxWait: 0, want: ErrBusy},
		{name: "context cancelled while waiting", maxWait: time.Minute, cancel: true, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, release := holdSlots(t, tt.maxWait)
			defer release()

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.cancel {
				go func() {
					waitFor(t, func() bool { return h.Waiting() == 1 })
					cancel()
				}()
			}
			start := time.Now()
			_, err := h.Hash(ctx, "Vq7!r2#Lp9_x")
			if !errors.Is(err, tt.want) {
				t.Fatalf("Hash with both slots held: %v, want %v", err, tt.want)
			}
			if d := time.Since(start); !tt.cancel && d < tt.maxWait {
				t.Errorf("gave up after %v, before the max wait %v", d, tt.maxWait)
			}
			if h.Waiting() != 0 {
				t.Errorf("Waiting() = %d after giving up, want 0", h.Waiting())
			}
			if _, _, err := h.Verify(ctx, "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$"+b64(make([]byte, 32)), "x"); !errors.Is(err, tt.want) {
				t.Errorf("Verify with both slots held: %v, want %v", err, tt.want)
			}
			if err := h.DummyVerify(ctx, "x"); !errors.Is(err, tt.want) {
				t.Errorf("DummyVerify with both slots held: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWaitingCallerGetsFreedSlot(t *testing.T) {
	h, release := holdSlots(t, time.Minute)
	done := make(chan error, 1)
	go func() {
		_, err := h.Hash(t.Context(), "Vq7!r2#Lp9_x")
		done <- err
	}()
	waitFor(t, func() bool { return h.Waiting() == 1 })
	release()
	if err := <-done; err != nil {
		t.Fatalf("waiting Hash after release: %v", err)
	}
}

// holdSlots returns a Hasher with two slots, both held by hashes blocked until
// release is called (release may be called more than once).
func holdSlots(t *testing.T, maxWait time.Duration) (h *Hasher, release func()) {
	t.Helper()
	h = NewHasher(fastParams, 2, maxWait)
	unblock := make(chan struct{})
	var held sync.WaitGroup
	held.Add(2)
	var entered atomic.Int64
	h.inSlot = func() {
		if entered.Add(1) <= 2 {
			held.Done()
			<-unblock
		}
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := h.Hash(context.Background(), "holder"); err != nil {
				t.Errorf("holder: %v", err)
			}
		})
	}
	held.Wait()
	if h.InFlight() != 2 {
		t.Fatalf("InFlight() = %d with both slots held, want 2", h.InFlight())
	}
	var once sync.Once
	release = func() {
		once.Do(func() { close(unblock) })
		wg.Wait()
	}
	t.Cleanup(release)
	return h, release
}

func waitFor(t *testing.T, cond func() bool) {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error("condition not met within 5s")
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func raise(max *atomic.Int64, n int64) {
	for {
		cur := max.Load()
		if n <= cur || max.CompareAndSwap(cur, n) {
			return
		}
	}
}

func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

// BenchmarkArgon2idBare is the cost of one argon2id with the default
// parameters, without the Hasher around it; a login benchmark compares the
// full HTTP login to it.
func BenchmarkArgon2idBare(b *testing.B) {
	p := DefaultHashParams()
	pw, salt := []byte("Vq7!r2#Lp9_x"), make([]byte, p.SaltLen)
	for b.Loop() {
		argon2.IDKey(pw, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	}
}

func BenchmarkHasherVerify(b *testing.B) {
	h := NewHasher(DefaultHashParams(), 0, time.Minute)
	enc, err := h.Hash(b.Context(), "Vq7!r2#Lp9_x")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _, err := h.Verify(b.Context(), enc, "Vq7!r2#Lp9_x"); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}
