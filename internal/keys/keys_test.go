package keys_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"campusid/internal/keys"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

var ctx = context.Background()

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func manager(t *testing.T, db *store.DB, s []byte, c *clock) *keys.Manager {
	t.Helper()
	m, err := keys.New(db, s, keys.ES256, time.Hour, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sign makes a compact JWS with the manager's active key.
func sign(t *testing.T, m *keys.Manager) (string, string) {
	t.Helper()
	k, err := m.SigningKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.SignatureAlgorithm(), Key: jose.JSONWebKey{Key: k.Key(), KeyID: k.ID()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign([]byte(`{"sub":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out, k.ID()
}

// verify checks a JWS against the published keys, as a relying party would.
func verify(t *testing.T, m *keys.Manager, token string) error {
	t.Helper()
	pub, err := m.PublicKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range pub {
		if k.ID() == jws.Signatures[0].Header.KeyID {
			_, err := jws.Verify(k.Key())
			return err
		}
	}
	return errors.New("no published key with this kid")
}

func TestRotationWithOverlap(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Date(2030, 1, 1, 8, 0, 0, 0, time.UTC)}
		m := manager(t, db, secret(1), c)
		if err := m.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.Ensure(ctx); err != nil { // idempotent
			t.Fatal(err)
		}
		old, oldID := sign(t, m)
		if all, _ := db.ListSigningKeys(ctx); len(all) != 1 || all[0].Algorithm != "ES256" || !all[0].Active {
			t.Fatalf("after Ensure: %+v", all)
		}
		k, err := m.Rotate(ctx, keys.RS256)
		if err != nil {
			t.Fatal(err)
		}
		fresh, freshID := sign(t, m)
		if freshID != k.ID || freshID == oldID {
			t.Fatalf("signing with %s after rotating to %s (old %s)", freshID, k.ID, oldID)
		}
		if algs, _ := m.Algorithms(ctx); len(algs) != 2 {
			t.Fatalf("algorithms during the overlap: %v", algs)
		}
		if err := verify(t, m, old); err != nil {
			t.Fatalf("a token of the old key during the overlap: %v", err)
		}
		if err := verify(t, m, fresh); err != nil {
			t.Fatalf("a token of the new key: %v", err)
		}
		c.Advance(time.Hour + time.Second)
		if err := verify(t, m, old); err == nil {
			t.Fatal("the old key is still published after the overlap")
		}
		if pub, _ := m.PublicKeys(ctx); len(pub) != 1 || pub[0].ID() != freshID {
			t.Fatalf("published after the overlap: %v", pub)
		}
	})
}

// TestOtherNodeSeesRotation: a node notices a rotation made elsewhere (the
// CLI) within activeTTL, and publishes the new key at once.
func TestOtherNodeSeesRotation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Date(2030, 1, 1, 8, 0, 0, 0, time.UTC)}
		node, cli := manager(t, db, secret(1), c), manager(t, db, secret(1), c)
		if err := node.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		_, before := sign(t, node)
		k, err := cli.Rotate(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if pub, _ := node.PublicKeys(ctx); len(pub) != 2 {
			t.Fatalf("the node publishes %d keys right after the rotation, want 2", len(pub))
		}
		if _, id := sign(t, node); id != before {
			t.Fatalf("the node switched before its cache expired")
		}
		c.Advance(31 * time.Second)
		if _, id := sign(t, node); id != k.ID {
			t.Fatalf("the node signs with %s, want the new key %s", id, k.ID)
		}
	})
}

// TestEncryptedAtRest: the stored private key is not a key; it opens only
// with the right encryption key, and a wrong one is named as such.
func TestEncryptedAtRest(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Now()}
		m := manager(t, db, secret(1), c)
		if err := m.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		row, err := db.ActiveSigningKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(row.PrivateEnc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x509.ParsePKCS8PrivateKey(raw); err == nil {
			t.Fatal("the stored private key parses as PKCS#8")
		}
		for i := range raw {
			if _, err := x509.ParsePKCS8PrivateKey(raw[i:]); err == nil {
				t.Fatalf("a PKCS#8 key is readable at offset %d", i)
			}
		}
		k, _ := m.SigningKey(ctx)
		der, _ := x509.MarshalPKCS8PrivateKey(k.Key())
		if bytes.Contains(raw, der[len(der)-32:]) {
			t.Fatal("the private scalar is in the stored bytes")
		}
		if row.EncKeyID != m.Fingerprint() || bytes.Contains([]byte(row.EncKeyID), secret(1)) {
			t.Fatalf("fingerprint %q", row.EncKeyID)
		}
		other := manager(t, db, secret(2), c)
		if err := other.Ensure(ctx); !errors.Is(err, keys.ErrWrongSecret) {
			t.Fatalf("another encryption key: %v", err)
		}
		// Tampering with the ciphertext is detected.
		raw[len(raw)-1] ^= 1
		row.PrivateEnc = base64.StdEncoding.EncodeToString(raw)
		row.ID, row.Active = "tampered", true
		if err := db.AddActiveSigningKey(ctx, row, ptr(c.Now().Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
		fresh := manager(t, db, secret(1), c)
		if _, err := fresh.SigningKey(ctx); !errors.Is(err, keys.ErrWrongSecret) {
			t.Fatalf("a tampered key: %v", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestOneActiveKeyWhenNodesStartTogether: nodes starting at once on a new
// database end up with one active key.
func TestOneActiveKeyWhenNodesStartTogether(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Now()}
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for range 6 {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- manager(t, db, secret(1), c).Ensure(ctx) }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		all, _ := db.ListSigningKeys(ctx)
		if len(all) != 1 {
			t.Fatalf("%d keys after a concurrent start, want 1", len(all))
		}
	})
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	s, generated, err := keys.LoadSecret("", "", dir)
	if err != nil || len(s) != 32 || generated != filepath.Join(dir, keys.KeyFileName) {
		t.Fatalf("generate: %v %q %v", len(s), generated, err)
	}
	if fi, err := os.Stat(generated); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	again, generated, err := keys.LoadSecret("", "", dir)
	if err != nil || generated != "" || !bytes.Equal(again, s) {
		t.Fatalf("second start: %v %q", err, generated)
	}
	b64 := base64.StdEncoding.EncodeToString(secret(7))
	if got, _, err := keys.LoadSecret(b64, "", dir); err != nil || !bytes.Equal(got, secret(7)) {
		t.Fatalf("from the configuration: %v", err)
	}
	file := filepath.Join(t.TempDir(), "k")
	os.WriteFile(file, []byte(base64.RawURLEncoding.EncodeToString(secret(8))+"\n"), 0o600)
	if got, _, err := keys.LoadSecret("", file, dir); err != nil || !bytes.Equal(got, secret(8)) {
		t.Fatalf("from a file: %v", err)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString(secret(1)[:16])} {
		if _, _, err := keys.LoadSecret(bad, "", dir); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	m, err := keys.New(nil, secret(1), keys.ES256, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if m.Derive("a") == m.Derive("b") || m.Derive("a") != m.Derive("a") {
		t.Fatal("Derive is not a function of its purpose")
	}
	if _, err := keys.New(nil, secret(1), "HS256", time.Hour, time.Now); err == nil {
		t.Fatal("HS256 accepted")
	}
}
