package store_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

func newClient(t *testing.T, db *store.DB, id string, now time.Time) store.OIDCClient {
	t.Helper()
	c := store.OIDCClient{ID: id, Name: "App " + id, RedirectURIs: []string{"https://app.example/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "email"}, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateOIDCClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOIDCClientsRoundTrip(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		now := time.UnixMilli(time.Now().UnixMilli()).UTC()
		c := newClient(t, db, "app", now)
		if err := db.CreateOIDCClient(ctx, c); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate id: %v", err)
		}
		got, err := db.OIDCClientByID(ctx, "app")
		if err != nil || got.Name != c.Name || len(got.RedirectURIs) != 1 || got.Scopes[1] != "email" || got.Source != store.ClientFromCLI ||
			!got.CreatedAt.Equal(now) || len(got.PostLogoutURIs) != 0 {
			t.Fatalf("read back %+v, %v", got, err)
		}
		c.Name, c.Source, c.FirstParty = "Renamed", store.ClientFromConfig, true
		if err := db.UpsertOIDCClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.OIDCClientByID(ctx, "app"); got.Name != "Renamed" || !got.FirstParty || got.Source != store.ClientFromConfig {
			t.Fatalf("after upsert %+v", got)
		}
		if err := db.UpdateOIDCClient(ctx, store.OIDCClient{ID: "none"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update of an unknown client: %v", err)
		}
		if err := db.DeleteOIDCClient(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.OIDCClientByID(ctx, "app"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
}

// TestOIDCSingleUseRows: a code and a refresh token are claimed once, even
// by parallel callers.
func TestOIDCSingleUseRows(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		now := time.Now()
		a := newAccount(t, db, "jdupont")
		newClient(t, db, "app", now)
		r := store.OIDCAuthRequest{ClientID: "app", RedirectURI: "https://app.example/cb", Scopes: []string{"openid"},
			ResponseType: "code", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := db.CreateOIDCAuthRequest(ctx, &r); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveOIDCAuthCode(ctx, r.ID, "h", now.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a code before the sign-in: %v", err)
		}
		if err := db.CompleteOIDCAuthRequest(ctx, r.ID, a.ID, "s1", now, []string{"pwd"}); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveOIDCAuthCode(ctx, r.ID, "h", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveOIDCAuthCode(ctx, r.ID, "h2", now.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a second code: %v", err)
		}
		got, err := db.OIDCAuthRequestByCode(ctx, "h")
		if err != nil || got.AccountID != a.ID || got.AMR[0] != "pwd" || got.State != store.AuthRequestCode || got.LoginFrom != nil {
			t.Fatalf("by code: %+v %v", got, err)
		}
		parallel := func(fn func() error) int32 {
			var ok atomic.Int32
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if fn() == nil {
						ok.Add(1)
					}
				}()
			}
			wg.Wait()
			return ok.Load()
		}
		if n := parallel(func() error { return db.ClaimOIDCAuthCode(ctx, r.ID) }); n != 1 {
			t.Fatalf("%d claims of one code", n)
		}
		// A redeemed request stays (reuse detection) until it expires.
		if err := db.DeleteOIDCAuthRequest(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.OIDCAuthRequestByID(ctx, r.ID); err != nil {
			t.Fatalf("a redeemed request was deleted: %v", err)
		}

		g := store.OIDCGrant{AccountID: a.ID, ClientID: "app", Scopes: []string{"openid", "offline_access"}, AuthTime: now,
			CreatedAt: now, LastUsedAt: now}
		if err := db.CreateOIDCGrant(ctx, &g); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateOIDCRefreshToken(ctx, store.OIDCRefreshToken{TokenHash: "rt", GrantID: g.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if n := parallel(func() error { return db.UseOIDCRefreshToken(ctx, "rt", now) }); n != 1 {
			t.Fatalf("%d uses of one refresh token", n)
		}
		at := store.OIDCAccessToken{GrantID: g.ID, AccountID: a.ID, ClientID: "app", Scopes: g.Scopes, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := db.CreateOIDCAccessToken(ctx, &at); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeOIDCGrant(ctx, g.ID, "reuse", now); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeOIDCGrant(ctx, g.ID, "reuse", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second revocation: %v", err)
		}
		if got, _ := db.OIDCAccessTokenByID(ctx, at.ID); got.RevokedAt == nil {
			t.Fatal("an access token of a revoked grant is live")
		}
		if gg, _ := db.OIDCGrantByID(ctx, g.ID); gg.RevokeReason != "reuse" || gg.RevokedAt == nil {
			t.Fatalf("grant %+v", gg)
		}
	})
}

func TestOIDCConsentsRevocationAndCleanup(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		now := time.Now()
		a := newAccount(t, db, "jdupont")
		newClient(t, db, "app", now)
		if err := db.SaveOIDCConsent(ctx, store.OIDCConsent{AccountID: a.ID, ClientID: "app", Scopes: []string{"openid"}, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveOIDCConsent(ctx, store.OIDCConsent{AccountID: a.ID, ClientID: "app", Scopes: []string{"openid", "email"}, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		list, err := db.ListOIDCConsents(ctx, a.ID)
		if err != nil || len(list) != 1 || list[0].ClientName != "App app" || len(list[0].Scopes) != 2 {
			t.Fatalf("consents %+v %v", list, err)
		}
		g := store.OIDCGrant{AccountID: a.ID, ClientID: "app", Scopes: []string{"openid"}, AuthTime: now, CreatedAt: now, LastUsedAt: now}
		db.CreateOIDCGrant(ctx, &g)
		db.CreateOIDCRefreshToken(ctx, store.OIDCRefreshToken{TokenHash: "rt", GrantID: g.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		at := store.OIDCAccessToken{AccountID: a.ID, ClientID: "app", Scopes: g.Scopes, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		db.CreateOIDCAccessToken(ctx, &at)
		found, err := db.RevokeOIDCClientAccess(ctx, a.ID, "app", "user", now)
		if err != nil || !found {
			t.Fatalf("revoke: %v %v", found, err)
		}
		if found, _ := db.RevokeOIDCClientAccess(ctx, a.ID, "app", "user", now); found {
			t.Fatal("a second revocation found something")
		}
		if _, err := db.OIDCConsentOf(ctx, a.ID, "app"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("consent after revocation: %v", err)
		}
		if got, _ := db.OIDCAccessTokenByID(ctx, at.ID); got.RevokedAt == nil {
			t.Fatal("access token live after revocation")
		}
		if live, _ := db.ListOIDCGrants(ctx, a.ID); len(live) != 0 {
			t.Fatalf("live grants after revocation: %v", live)
		}
		// Cleanup removes what ended before the cutoff.
		if err := db.DeleteExpiredOIDC(ctx, now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.OIDCRefreshTokenByHash(ctx, "rt"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refresh token after cleanup: %v", err)
		}
		if _, err := db.OIDCGrantByID(ctx, g.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("grant after cleanup: %v", err)
		}
		if _, err := db.OIDCAccessTokenByID(ctx, at.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("access token after cleanup: %v", err)
		}
	})
}
