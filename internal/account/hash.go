package account

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// HashParams are the argon2id parameters of new password hashes.
type HashParams struct {
	Memory      uint32 // KiB
	Iterations  uint32
	Parallelism uint8
	SaltLen     uint32 // bytes
	KeyLen      uint32 // bytes
}

// DefaultHashParams returns the OWASP recommendation for argon2id: 19 MiB,
// two passes, one lane.
func DefaultHashParams() HashParams {
	return HashParams{Memory: 19456, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}
}

// Ceilings on argon2id parameters, for configured ones and for those read from
// a stored (possibly imported) hash: a hostile imported hash must not make one
// login take gigabytes or minutes.
const (
	maxHashMemory     = 4 << 20 // KiB: 4 GiB (RFC 9106's first choice is 2 GiB)
	maxHashIterations = 100
	maxHashBytes      = 128 // salt and key
	maxEncodedLen     = 512 // an encoded hash, before it is parsed
	// minImportedSalt is the shortest salt accepted in a stored hash (the PHC
	// format's minimum); new hashes use at least 16 bytes.
	minImportedSalt = 8
	// maxBcryptCost bounds imported bcrypt hashes: cost 16 is already about
	// five seconds per check.
	maxBcryptCost = 16
)

// ErrBusy is returned when no hashing slot frees up within the Hasher's
// maximum wait. Callers answer 503 (or 429) rather than queue without bound.
var ErrBusy = errors.New("account: too many password hashes in progress")

// ErrMalformedHash is wrapped by the errors Verify returns for a stored hash it
// cannot read: unknown scheme, bad syntax, or parameters out of bounds.
var ErrMalformedHash = errors.New("account: malformed password hash")

// ValidateHashParams reports every problem with p at once.
func ValidateHashParams(p HashParams) error {
	var errs []error
	if p.Parallelism < 1 {
		errs = append(errs, errors.New("account: hash parallelism must be at least 1"))
	}
	if p.Memory < 8*uint32(p.Parallelism) {
		errs = append(errs, fmt.Errorf("account: hash memory %d KiB must be at least 8 KiB per lane", p.Memory))
	}
	if p.Memory > maxHashMemory {
		errs = append(errs, fmt.Errorf("account: hash memory %d KiB must be at most %d KiB", p.Memory, maxHashMemory))
	}
	if p.Iterations < 1 || p.Iterations > maxHashIterations {
		errs = append(errs, fmt.Errorf("account: hash iterations %d must be between 1 and %d", p.Iterations, maxHashIterations))
	}
	if p.SaltLen < 16 || p.SaltLen > maxHashBytes {
		errs = append(errs, fmt.Errorf("account: hash salt length %d must be between 16 and %d bytes", p.SaltLen, maxHashBytes))
	}
	if p.KeyLen < 16 || p.KeyLen > maxHashBytes {
		errs = append(errs, fmt.Errorf("account: hash key length %d must be between 16 and %d bytes", p.KeyLen, maxHashBytes))
	}
	return errors.Join(errs...)
}

// Hasher hashes and verifies passwords, running at most a fixed number of
// hashes at once so that a burst of logins cannot exhaust memory: at most
// maxConcurrent*Memory KiB are in use for hashing.
type Hasher struct {
	params  HashParams
	sem     chan struct{}
	maxWait time.Duration

	inFlight atomic.Int64
	waiting  atomic.Int64

	dummySalt, dummyKey []byte

	// inSlot, when set by a test, runs while a slot is held, before hashing.
	inSlot func()
}

// NewHasher returns a Hasher producing argon2id hashes with p, which must pass
// ValidateHashParams (NewHasher panics otherwise: config validation checks it
// first). At most maxConcurrent hashes run at once (<= 0 means
// runtime.NumCPU()); a caller waits at most maxWait for a slot, then gets
// ErrBusy. maxWait <= 0 means not waiting at all.
func NewHasher(p HashParams, maxConcurrent int, maxWait time.Duration) *Hasher {
	if err := ValidateHashParams(p); err != nil {
		panic(err)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.NumCPU()
	}
	h := &Hasher{
		params:    p,
		sem:       make(chan struct{}, maxConcurrent),
		maxWait:   maxWait,
		dummySalt: make([]byte, p.SaltLen),
		dummyKey:  make([]byte, p.KeyLen),
	}
	rand.Read(h.dummyKey) // never fails (crypto/rand); any fixed value would do
	return h
}

// Params returns the parameters of new hashes.
func (h *Hasher) Params() HashParams { return h.params }

// InFlight returns how many hashes are running now.
func (h *Hasher) InFlight() int { return int(h.inFlight.Load()) }

// Waiting returns how many callers are waiting for a slot.
func (h *Hasher) Waiting() int { return int(h.waiting.Load()) }

// Hash returns password hashed with argon2id in the PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, unpadded standard base64.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	p := h.params
	salt := make([]byte, p.SaltLen)
	rand.Read(salt)
	var key []byte
	if err := h.run(ctx, func() {
		key = argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	}); err != nil {
		return "", err
	}
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches encoded, a stored hash of one of the
// schemes below. needsRehash is true when it matches but encoded is not
// argon2id with h.Params(): the caller should then store a new Hash of the
// password. A hash Verify cannot read gives an error wrapping
// ErrMalformedHash; no free slot gives ErrBusy or ctx.Err().
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (ok, needsRehash bool, err error) {
	if len(encoded) > maxEncodedLen {
		return false, false, fmt.Errorf("%w: longer than %d bytes", ErrMalformedHash, maxEncodedLen)
	}
	var s *scheme
	for i := range schemes {
		if strings.HasPrefix(encoded, schemes[i].prefix) {
			s = &schemes[i]
			break
		}
	}
	if s == nil {
		return false, false, fmt.Errorf("%w: unknown scheme", ErrMalformedHash)
	}
	check, upToDate, err := s.parse(encoded, h.params)
	if err != nil {
		return false, false, fmt.Errorf("%w: %s: %w", ErrMalformedHash, s.name, err)
	}
	if err := h.run(ctx, func() { ok = check(password) }); err != nil {
		return false, false, err
	}
	return ok, ok && !upToDate, nil
}

// DummyVerify spends the time of a Verify against a hash with the current
// parameters, and holds a slot like it, so that a login for an unknown account
// takes as long as one for a known account. Its only errors are ErrBusy and
// ctx.Err().
func (h *Hasher) DummyVerify(ctx context.Context, password string) error {
	p := h.params
	return h.run(ctx, func() {
		key := argon2.IDKey([]byte(password), h.dummySalt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
		subtle.ConstantTimeCompare(key, h.dummyKey)
	})
}

// run calls f while holding a hashing slot.
func (h *Hasher) run(ctx context.Context, f func()) error {
	if err := h.acquire(ctx); err != nil {
		return err
	}
	h.inFlight.Add(1)
	defer func() {
		h.inFlight.Add(-1)
		<-h.sem
	}()
	if h.inSlot != nil {
		h.inSlot()
	}
	f()
	return nil
}

func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	if h.maxWait <= 0 {
		return ErrBusy
	}
	h.waiting.Add(1)
	defer h.waiting.Add(-1)
	timer := time.NewTimer(h.maxWait)
	defer timer.Stop()
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-timer.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A scheme reads one kind of stored hash, recognised by its prefix; like
// kratos, imported hashes of legacy schemes are verified and then rehashed.
type scheme struct {
	name   string
	prefix string
	// parse checks encoded without hashing anything and returns the (slow)
	// check to run while holding a slot, and whether encoded is argon2id with
	// the current parameters.
	parse func(encoded string, current HashParams) (check func(password string) bool, upToDate bool, err error)
}

var schemes = []scheme{
	{name: "argon2id", prefix: "$argon2id$", parse: parseArgon2id},
	{name: "bcrypt", prefix: "$2a$", parse: parseBcrypt},
	{name: "bcrypt", prefix: "$2b$", parse: parseBcrypt},
	{name: "bcrypt", prefix: "$2y$", parse: parseBcrypt},
}

// parseArgon2id reads $argon2id$v=19$m=M,t=T,p=P$salt$key.
func parseArgon2id(encoded string, current HashParams) (func(string) bool, bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, false, errors.New("want $argon2id$v=19$m=M,t=T,p=P$salt$key")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, false, fmt.Errorf("unsupported version %q", parts[2])
	}
	var p HashParams
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return nil, false, errors.New("want parameters m=M,t=T,p=P")
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return nil, false, errors.New("want parameters m=M,t=T,p=P")
		}
		bits := 32
		if name == "p" {
			bits = 8
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			return nil, false, fmt.Errorf("parameter %s: %w", name, err)
		}
		switch name {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Iterations = uint32(n)
		case "p":
			p.Parallelism = uint8(n)
		}
	}
	switch {
	case p.Parallelism < 1:
		return nil, false, errors.New("parallelism must be at least 1")
	case p.Memory < 8*uint32(p.Parallelism) || p.Memory > maxHashMemory:
		return nil, false, fmt.Errorf("memory %d KiB out of bounds", p.Memory)
	case p.Iterations < 1 || p.Iterations > maxHashIterations:
		return nil, false, fmt.Errorf("iterations %d out of bounds", p.Iterations)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return nil, false, fmt.Errorf("salt: %w", err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return nil, false, fmt.Errorf("key: %w", err)
	}
	if len(salt) < minImportedSalt || len(salt) > maxHashBytes {
		return nil, false, fmt.Errorf("salt length %d out of bounds", len(salt))
	}
	if len(key) < 16 || len(key) > maxHashBytes {
		return nil, false, fmt.Errorf("key length %d out of bounds", len(key))
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	check := func(password string) bool {
		got := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
		return subtle.ConstantTimeCompare(got, key) == 1
	}
	return check, p == current, nil
}

// parseBcrypt reads $2a$, $2b$ and $2y$ hashes (the same algorithm; the
// letters only tell which historical implementation bugs were fixed):
// $2b$CC$ then 22 characters of salt and 31 of hash.
func parseBcrypt(encoded string, _ HashParams) (func(string) bool, bool, error) {
	const bcryptLen = 60
	if len(encoded) != bcryptLen || encoded[6] != '$' {
		return nil, false, errors.New("want $2b$CC$ and 53 characters")
	}
	for _, c := range encoded[7:] {
		if !strings.ContainsRune("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", c) {
			return nil, false, errors.New("invalid character in salt or hash")
		}
	}
	cost, err := bcrypt.Cost([]byte(encoded))
	if err != nil {
		return nil, false, err
	}
	if cost > maxBcryptCost {
		return nil, false, fmt.Errorf("cost %d above %d", cost, maxBcryptCost)
	}
	check := func(password string) bool {
		// CompareHashAndPassword compares in constant time.
		return bcrypt.CompareHashAndPassword([]byte(encoded), []byte(password)) == nil
	}
	return check, false, nil
}
