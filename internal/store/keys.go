package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SigningKey is a token-signing key pair; the private half is encrypted by
// package keys before it gets here.
type SigningKey struct {
	ID         string
	Algorithm  string
	PublicJWK  string
	PrivateEnc string
	EncKeyID   string
	Active     bool
	CreatedAt  time.Time
	RetiredAt  *time.Time
	NotAfter   *time.Time
}

const signingKeyCols = `id, algorithm, public_jwk, private_enc, enc_key_id, active, created_at, retired_at, not_after`

func scanSigningKey(row interface{ Scan(...any) error }) (SigningKey, error) {
	var (
		k                 SigningKey
		active            int
		created           int64
		retired, notAfter sql.NullInt64
	)
	err := row.Scan(&k.ID, &k.Algorithm, &k.PublicJWK, &k.PrivateEnc, &k.EncKeyID, &active, &created, &retired, &notAfter)
	k.Active, k.CreatedAt, k.RetiredAt, k.NotAfter = active == 1, fromMS(created), fromNull(retired), fromNull(notAfter)
	return k, err
}

// AddActiveSigningKey stores k as the active key. With retireUntil set, the
// key active until now is retired in the same transaction and stays
// published until then (a rotation); without it, ErrConflict means another
// node stored an active key first.
func (db *DB) AddActiveSigningKey(ctx context.Context, k SigningKey, retireUntil *time.Time) error {
	return db.InTx(ctx, func(tx *DB) error {
		if retireUntil != nil {
			if _, err := tx.exec(ctx, `UPDATE signing_keys SET active = 0, retired_at = ?, not_after = ? WHERE active = 1`,
				ms(k.CreatedAt), ms(*retireUntil)); err != nil {
				return fmt.Errorf("store: retire signing key: %w", err)
			}
		}
		_, err := tx.exec(ctx, `INSERT INTO signing_keys (`+signingKeyCols+`) VALUES (?,?,?,?,?,1,?,NULL,NULL)`,
			k.ID, k.Algorithm, k.PublicJWK, k.PrivateEnc, k.EncKeyID, ms(k.CreatedAt))
		if err != nil {
			return fmt.Errorf("store: add signing key: %w", err)
		}
		return nil
	})
}

// ActiveSigningKey returns the key that signs now.
func (db *DB) ActiveSigningKey(ctx context.Context) (SigningKey, error) {
	k, err := scanSigningKey(db.queryRow(ctx, `SELECT `+signingKeyCols+` FROM signing_keys WHERE active = 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	return k, db.mapErr(err)
}

// PublishedSigningKeys returns the keys of the JWKS at now: the active one
// and the retired ones whose tokens may still be alive.
func (db *DB) PublishedSigningKeys(ctx context.Context, now time.Time) ([]SigningKey, error) {
	return db.signingKeys(ctx, `WHERE active = 1 OR not_after > ? ORDER BY created_at DESC`, ms(now))
}

// ListSigningKeys returns every key, newest first.
func (db *DB) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	return db.signingKeys(ctx, `ORDER BY created_at DESC`)
}

func (db *DB) signingKeys(ctx context.Context, where string, args ...any) ([]SigningKey, error) {
	rows, err := db.query(ctx, `SELECT `+signingKeyCols+` FROM signing_keys `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: signing keys: %w", err)
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		k, err := scanSigningKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}
