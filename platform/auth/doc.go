// Package auth issues and verifies Piazza's access tokens.
//
// An access token is a JWT signed with Ed25519 (JWS alg "EdDSA"). Its header
// names the signing key by kid, the RFC 7638 JWK thumbprint of the public key;
// its claims are sub (the user id), sid (the session id), jti (a UUIDv7), iat,
// exp, iss and aud. Tokens are short-lived (15 minutes by default): revocation
// is the refresh token's business, not this package's.
//
// Keys live in a [KeySet], loaded from a directory of PKCS#8 PEM files by
// [LoadKeyDir]. The file whose name sorts last signs; every file's public key
// is published (see [KeySet.JWKS]) and accepted. Rotating therefore means:
// add a new file ([GenerateKeyFile]), reload, and once every token signed with
// the old key has expired, delete the old file and reload again.
//
// Only the issuing service holds the private keys. Every service verifies
// locally with a [Verifier], which takes its public keys from a [KeySource]:
// the [KeySet] itself in-process, or a [JWKSCache] that fetches the JWK Set
// document published by the issuer (see [HTTPFetcher]) and refreshes it when
// a token names a key it has not seen yet. A Verifier remembers the tokens it
// accepted, so a client's token costs one signature check per process, not
// one per request; a remembered token is still refused once its key is no
// longer published or its time is up. [BearerToken] takes the token out of an
// Authorization header.
//
// Verification errors are [*errs.Error] values with a client-safe message and
// one of three codes: [errs.TokenMissing], [errs.TokenExpired] (only for a
// token that is valid in every respect but its age) and [errs.TokenInvalid]
// (anything else). The precise reason is the error's internal cause, for logs.
package auth
