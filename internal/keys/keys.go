// Package keys holds the keys that sign tokens and the key that encrypts
// them at rest.
//
// Signing keys live in the database, shared by every node: the public half
// as a JSON Web Key, the private half (PKCS#8) encrypted with AES-256-GCM
// under the encryption key of the configuration (keys.encryption_key or
// keys.encryption_key_file, or a file generated under data_dir). One key is
// active and signs; Rotate makes a new one active and keeps the old one in
// the JWKS for Overlap, until every token it signed has expired:
//
//	generated ──▶ active ──(rotate)──▶ retired, published until not_after ──▶ out of the JWKS
//
// Nodes read the active key from the database at most every activeTTL, so
// after a rotation made elsewhere (campusid keys rotate) they switch within
// that time; the old key is still published, so nothing breaks meanwhile.
package keys

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"campusid/internal/store"
)

// Algorithms of signing keys.
const (
	ES256 = "ES256"
	RS256 = "RS256"
)

// activeTTL is how long a node keeps the active key before asking the
// database again.
const activeTTL = 30 * time.Second

// KeyFileName is the encryption key generated under data_dir when the
// configuration names none.
const KeyFileName = "encryption.key"

// ValidAlgorithm reports whether alg can be the algorithm of new keys.
func ValidAlgorithm(alg string) bool { return alg == ES256 || alg == RS256 }

// ParseSecret decodes an encryption key: base64 (standard or URL alphabet,
// padded or not) of exactly 32 bytes.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("keys: the encryption key must be 32 bytes, got %d (generate one with: openssl rand -base64 32)", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("keys: the encryption key is not base64 (generate one with: openssl rand -base64 32)")
}

// LoadSecret returns the encryption key: key when set, else the content of
// file when set, else the file KeyFileName under dataDir, generated (mode
// 0600) when missing; generated is its path when this call created it.
func LoadSecret(key, file, dataDir string) (secret []byte, generated string, err error) {
	switch {
	case key != "":
		secret, err = ParseSecret(key)
		return secret, "", err
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("keys: encryption_key_file: %w", err)
		}
		secret, err = ParseSecret(string(b))
		return secret, "", err
	}
	path := filepath.Join(dataDir, KeyFileName)
	if b, err := os.ReadFile(path); err == nil {
		secret, err = ParseSecret(string(b))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
		return secret, "", nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("keys: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("keys: %w", err)
	}
	secret = make([]byte, 32)
	rand.Read(secret)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process made it first
		return LoadSecret("", "", dataDir)
	}
	if err != nil {
		return nil, "", fmt.Errorf("keys: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(secret) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, "", fmt.Errorf("keys: write %s: %w", path, werr)
	}
	return secret, path, nil
}

// Manager reads, creates and rotates the signing keys.
type Manager struct {
	db          *store.DB
	aead        cipher.AEAD
	secret      []byte
	fingerprint string
	algorithm   string
	overlap     time.Duration
	now         func() time.Time

	mu       sync.Mutex
	active   *PrivateKey
	activeAt time.Time
	public   map[string]PublicKey // parsed public keys by id
}

// New returns a manager over db whose new keys use algorithm and whose
// retired keys stay published for overlap.
func New(db *store.DB, secret []byte, algorithm string, overlap time.Duration, now func() time.Time) (*Manager, error) {
	if len(secret) != 32 {
		return nil, errors.New("keys: the encryption key must be 32 bytes")
	}
	if !ValidAlgorithm(algorithm) {
		return nil, fmt.Errorf("keys: unsupported algorithm %q (want ES256 or RS256)", algorithm)
	}
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return &Manager{db: db, aead: aead, secret: secret, fingerprint: Fingerprint(secret), algorithm: algorithm,
		overlap: overlap, now: now, public: map[string]PublicKey{}}, nil
}

// Fingerprint names an encryption key without revealing it.
func Fingerprint(secret []byte) string {
	sum := sha256.Sum256(append([]byte("campusid encryption key fingerprint\x00"), secret...))
	return hex.EncodeToString(sum[:8])
}

// Fingerprint is the fingerprint of the manager's encryption key.
func (m *Manager) Fingerprint() string { return m.fingerprint }

// Derive returns a 256-bit key for purpose, derived from the encryption key
// (HKDF-SHA256): every node with the same configuration derives the same.
func (m *Manager) Derive(purpose string) [32]byte {
	var out [32]byte
	b, err := hkdf.Key(sha256.New, m.secret, nil, "campusid "+purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give
	}
	copy(out[:], b)
	return out
}

// PrivateKey is the active signing key (op.SigningKey).
type PrivateKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func (k *PrivateKey) ID() string                                  { return k.id }
func (k *PrivateKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *PrivateKey) Key() any                                    { return k.key }

// PublicKey is a published verification key (op.Key).
type PublicKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key any
}

func (k PublicKey) ID() string                         { return k.id }
func (k PublicKey) Algorithm() jose.SignatureAlgorithm { return k.alg }
func (k PublicKey) Use() string                        { return "sig" }
func (k PublicKey) Key() any                           { return k.key }

// Ensure makes sure a key is active (creating one on a new database) and
// that this node can decrypt it.
func (m *Manager) Ensure(ctx context.Context) error {
	_, err := m.db.ActiveSigningKey(ctx)
	if errors.Is(err, store.ErrNotFound) {
		k, gerr := m.generate(m.algorithm)
		if gerr != nil {
			return gerr
		}
		err = m.db.AddActiveSigningKey(ctx, k, nil)
		if errors.Is(err, store.ErrConflict) { // another node made one first
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	m.invalidate()
	_, err = m.SigningKey(ctx)
	return err
}

// Rotate makes a new key of algorithm (the configured one when "") active;
// the previous one stays published for the overlap.
func (m *Manager) Rotate(ctx context.Context, algorithm string) (store.SigningKey, error) {
	if algorithm == "" {
		algorithm = m.algorithm
	}
	if !ValidAlgorithm(algorithm) {
		return store.SigningKey{}, fmt.Errorf("keys: unsupported algorithm %q (want ES256 or RS256)", algorithm)
	}
	k, err := m.generate(algorithm)
	if err != nil {
		return k, err
	}
	until := k.CreatedAt.Add(m.overlap)
	if err := m.db.AddActiveSigningKey(ctx, k, &until); err != nil {
		return k, fmt.Errorf("keys: rotate: %w", err)
	}
	m.invalidate()
	return k, nil
}

func (m *Manager) invalidate() {
	m.mu.Lock()
	m.active = nil
	m.mu.Unlock()
}

// SigningKey returns the active key, read from the database at most every activeTTL.
func (m *Manager) SigningKey(ctx context.Context) (*PrivateKey, error) {
	now := m.now()
	m.mu.Lock()
	if m.active != nil && now.Sub(m.activeAt) < activeTTL && !now.Before(m.activeAt) {
		k := m.active
		m.mu.Unlock()
		return k, nil
	}
	m.mu.Unlock()
	row, err := m.db.ActiveSigningKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: active key: %w", err)
	}
	k, err := m.decrypt(row)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.active, m.activeAt = k, now
	m.mu.Unlock()
	return k, nil
}

// PublicKeys returns the keys to publish (JWKS) and to verify with.
func (m *Manager) PublicKeys(ctx context.Context) ([]PublicKey, error) {
	rows, err := m.db.PublishedSigningKeys(ctx, m.now())
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	out := make([]PublicKey, 0, len(rows))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rows {
		k, ok := m.public[r.ID]
		if !ok {
			var jwk jose.JSONWebKey
			if err := jwk.UnmarshalJSON([]byte(r.PublicJWK)); err != nil {
				return nil, fmt.Errorf("keys: public key %s: %w", r.ID, err)
			}
			k = PublicKey{id: r.ID, alg: jose.SignatureAlgorithm(r.Algorithm), key: jwk.Key}
			m.public[r.ID] = k
		}
		out = append(out, k)
	}
	return out, nil
}

// Algorithms returns the algorithms of the published keys.
func (m *Manager) Algorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	keys, err := m.PublicKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []jose.SignatureAlgorithm
	for _, k := range keys {
		if !containsAlg(out, k.alg) {
			out = append(out, k.alg)
		}
	}
	return out, nil
}

func containsAlg(l []jose.SignatureAlgorithm, a jose.SignatureAlgorithm) bool {
	for _, x := range l {
		if x == a {
			return true
		}
	}
	return false
}

// generate makes a key pair and encrypts its private half.
func (m *Manager) generate(algorithm string) (store.SigningKey, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch algorithm {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keys: generate: %w", err)
	}
	id := store.NewID()
	pub, err := jose.JSONWebKey{Key: priv.Public(), KeyID: id, Algorithm: algorithm, Use: "sig"}.MarshalJSON()
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keys: public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keys: private key: %w", err)
	}
	return store.SigningKey{ID: id, Algorithm: algorithm, PublicJWK: string(pub), PrivateEnc: m.seal(id, der),
		EncKeyID: m.fingerprint, Active: true, CreatedAt: m.now()}, nil
}

// seal encrypts b, bound to the key id: base64(nonce || ciphertext).
func (m *Manager) seal(id string, b []byte) string {
	nonce := make([]byte, m.aead.NonceSize())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(m.aead.Seal(nonce, nonce, b, aad(id)))
}

func aad(id string) []byte { return []byte("campusid signing key " + id) }

// ErrWrongSecret: the keys were encrypted under another encryption key.
var ErrWrongSecret = errors.New("keys: the signing keys were encrypted with another encryption key")

func (m *Manager) decrypt(row store.SigningKey) (*PrivateKey, error) {
	if row.EncKeyID != m.fingerprint {
		return nil, fmt.Errorf("%w (theirs has fingerprint %s, this node's %s): give every node the same keys.encryption_key or keys.encryption_key_file",
			ErrWrongSecret, row.EncKeyID, m.fingerprint)
	}
	raw, err := base64.StdEncoding.DecodeString(row.PrivateEnc)
	if err != nil || len(raw) < m.aead.NonceSize() {
		return nil, fmt.Errorf("keys: key %s: malformed ciphertext", row.ID)
	}
	n := m.aead.NonceSize()
	der, err := m.aead.Open(nil, raw[:n], raw[n:], aad(row.ID))
	if err != nil {
		return nil, fmt.Errorf("%w: key %s does not decrypt", ErrWrongSecret, row.ID)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: key %s: %w", row.ID, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: key %s is not a signing key", row.ID)
	}
	return &PrivateKey{id: row.ID, alg: jose.SignatureAlgorithm(row.Algorithm), key: signer}, nil
}
