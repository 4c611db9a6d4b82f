package domain

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Session is one login of one account: every access token carries its id, and every refresh
// token belongs to one. A session ends when it is revoked (logout, refresh-token reuse) or when
// its last refresh token expires; each rotation pushes ExpiresAt forward, so a session in use
// lives on and an abandoned one ends RefreshTTL after its last refresh.
type Session struct {
	ID        string // UUIDv7
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero while the session is not revoked
}

// Check reports why the session cannot be used at now (ErrSessionRevoked, ErrSessionExpired),
// or nil.
func (s Session) Check(now time.Time) error {
	switch {
	case !s.RevokedAt.IsZero():
		return ErrSessionRevoked
	case !now.Before(s.ExpiresAt):
		return ErrSessionExpired
	}
	return nil
}

// RefreshTokenBytes is the entropy of a refresh token: 256 bits.
const RefreshTokenBytes = 32

// refreshTokenEncoding is how the token travels: unpadded base64url, 43 characters.
var refreshTokenEncoding = base64.RawURLEncoding

// RefreshToken is the stored form of a refresh token: its SHA-256, never the token itself, so
// a leaked table does not hand out sessions. A token is spent once (UsedAt), on rotation.
type RefreshToken struct {
	Hash      []byte // SHA-256 of the token's raw bytes
	SessionID string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero while unspent
}

// NewRefreshToken draws a fresh token from crypto/rand and returns what the client gets (the
// base64url text) and the hash to store.
func NewRefreshToken() (token string, hash []byte) {
	raw := make([]byte, RefreshTokenBytes)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (it crashes the program instead)
	sum := sha256.Sum256(raw)
	return refreshTokenEncoding.EncodeToString(raw), sum[:]
}

// HashRefreshToken returns the stored hash of a presented token, or ErrRefreshTokenInvalid
// when the text cannot be a token this service issued (wrong alphabet or length).
func HashRefreshToken(token string) ([]byte, error) {
	if len(token) != refreshTokenEncoding.EncodedLen(RefreshTokenBytes) {
		return nil, ErrRefreshTokenInvalid
	}
	raw, err := refreshTokenEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) != RefreshTokenBytes {
		return nil, ErrRefreshTokenInvalid
	}
	sum := sha256.Sum256(raw)
	return sum[:], nil
}
