package user_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events/outbox"
	"github.com/piazza-social/piazza/services/user"
	"github.com/piazza-social/piazza/services/user/app"
)

// The platform's outbox and token issuer plug into the service's ports as they are.
func TestServiceRunsOnThePlatformOutboxAndIssuer(t *testing.T) {
	ctx := t.Context()
	db := databasetest.OpenSQLite(t)
	if err := user.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := database.Migrate(ctx, db, outbox.Migrations); err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(outbox.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := auth.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := auth.NewIssuer(auth.IssuerConfig{Keys: ks, Issuer: "piazza", Audience: "piazza"})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := user.New(user.Config{PasswordHashing: tiny}, user.Deps{DB: db, Outbox: ob, Tokens: iss, Keys: ks}, nil)
	if err != nil {
		t.Fatal(err)
	}

	a, err := svc.App().SignUp.Handle(ctx, app.SignUp{Username: "alice", Email: "alice@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ob.Pending(ctx); err != nil || n != 1 {
		t.Fatalf("outbox holds %d events (%v), want the user.registered", n, err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Keys: ks, Issuer: "piazza", Audience: "piazza"})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(ctx, a.AccessToken)
	if err != nil || claims.UserID != a.User.ID || claims.SessionID != a.SessionID {
		t.Fatalf("access token claims %+v, %v; want user %s, session %s", claims, err, a.User.ID, a.SessionID)
	}
	jwks, err := svc.App().SigningKeys.Handle(ctx, app.None{})
	if err != nil || string(jwks) != string(ks.JWKS()) {
		t.Fatalf("published keys %s, %v", jwks, err)
	}
}
