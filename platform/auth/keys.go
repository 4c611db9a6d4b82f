package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrUnknownKey is returned by a [KeySource] asked for a key id it does not
// know (after it has had its chance to refresh).
var ErrUnknownKey = errors.New("auth: unknown key id")

// keyFileExt is the extension of key files in a key directory; other files
// (temporary files, READMEs) are ignored.
const keyFileExt = ".pem"

// keyFileTimeFormat names generated key files by their UTC creation time, so
// that sorting file names sorts keys by age.
const keyFileTimeFormat = "20060102T150405Z"

// KeySet is an immutable set of Ed25519 keys: one signing key and the public
// keys that verify tokens (the signing key's and, during a rotation, older
// ones). It is safe for concurrent use. To pick up a rotated key directory,
// load a new KeySet.
type KeySet struct {
	signer    ed25519.PrivateKey
	signerKID string
	kids      []string // newest (the signer) first
	public    map[string]ed25519.PublicKey
	jwks      []byte
}

// NewKeySet returns a key set of the given private keys, oldest first: the
// last one signs, all of them verify. Duplicates are ignored.
func NewKeySet(keys ...ed25519.PrivateKey) (*KeySet, error) {
	if len(keys) == 0 {
		return nil, errors.New("auth: a key set needs at least one key")
	}
	ks := &KeySet{public: make(map[string]ed25519.PublicKey, len(keys))}
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("auth: key %d is not an Ed25519 private key", i)
		}
		pub := k.Public().(ed25519.PublicKey)
		kid := KeyID(pub)
		if _, dup := ks.public[kid]; dup {
			continue
		}
		if ks.signer == nil {
			ks.signer, ks.signerKID = k, kid
		}
		ks.public[kid] = pub
		ks.kids = append(ks.kids, kid)
	}
	ks.jwks = encodeJWKS(ks.kids, ks.public)
	return ks, nil
}

// LoadKeyDir loads the key set stored in dir: every "*.pem" file holds one
// PKCS#8 PEM-encoded Ed25519 private key, and the file whose name sorts last
// is the signing key (name files by UTC creation time, as [GenerateKeyFile]
// does). A file that is not such a key is an error naming the file: a
// half-broken key directory must stop the process, not shrink the key set.
//
// When dir holds no key file, LoadKeyDir fails unless createIfEmpty is set, in
// which case it creates dir (mode 0700) if needed and generates the first key.
// createIfEmpty suits a single process (embedded mode); several instances
// sharing a directory should have it provisioned before they start.
func LoadKeyDir(dir string, createIfEmpty bool) (*KeySet, error) {
	files, err := keyFiles(dir)
	if err != nil && !(createIfEmpty && errors.Is(err, fs.ErrNotExist)) {
		return nil, fmt.Errorf("auth: read key directory: %w", err)
	}
	if len(files) == 0 {
		if !createIfEmpty {
			return nil, fmt.Errorf("auth: key directory %s holds no %s key file", dir, keyFileExt)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("auth: create key directory: %w", err)
		}
		path, err := GenerateKeyFile(dir)
		if err != nil {
			return nil, err
		}
		files = []string{path}
	}
	keys := make([]ed25519.PrivateKey, 0, len(files))
	for _, path := range files {
		k, err := readKeyFile(path)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return NewKeySet(keys...)
}

// keyFiles returns the paths of dir's key files, sorted by name.
func keyFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if !strings.HasSuffix(name, keyFileExt) || strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		out = append(out, filepath.Join(dir, name))
	}
	return out, nil
}

func readKeyFile(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read key file: %w", err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("auth: key file %s: no PEM \"PRIVATE KEY\" block", path)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("auth: key file %s: data after the key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: key file %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("auth: key file %s: a %T, not an Ed25519 key", path, k)
	}
	return ek, nil
}

// GenerateKeyFile generates an Ed25519 key and stores it in dir (which must
// exist) as a PKCS#8 PEM file readable only by its owner (0600), named by the
// current UTC time so that it sorts after every older key and becomes the
// signing key at the next load. It returns the file's path.
//
// The file appears atomically under its final name, so a process loading the
// directory concurrently never reads half a key, and an existing file is never
// overwritten.
func GenerateKeyFile(dir string) (string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("auth: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("auth: encode key: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	tmp, err := os.CreateTemp(dir, ".key-*.tmp")
	if err != nil {
		return "", fmt.Errorf("auth: create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("auth: create key file: %w", err)
	}
	if _, err := tmp.Write(pemBytes); err != nil {
		tmp.Close()
		return "", fmt.Errorf("auth: write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("auth: write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("auth: write key file: %w", err)
	}

	// Link (unlike rename) fails when the name is taken, so two keys
	// generated within the same second both survive. The "_NN" suffix sorts
	// after the bare name ('_' > '.') and before the next second's name.
	base := time.Now().UTC().Format(keyFileTimeFormat)
	for n := 0; n < 100; n++ {
		name := base + keyFileExt
		if n > 0 {
			name = fmt.Sprintf("%s_%02d%s", base, n, keyFileExt)
		}
		path := filepath.Join(dir, name)
		err := os.Link(tmp.Name(), path)
		if err == nil {
			syncDir(dir)
			return path, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("auth: store key file: %w", err)
		}
	}
	return "", fmt.Errorf("auth: store key file: too many keys named %s*", base)
}

// syncDir makes a new directory entry durable. It is best effort: the key is
// already written, and a file system that cannot sync a directory (some
// network ones) must not make key generation fail.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// KeyID returns the key id of pub: its RFC 7638 JWK thumbprint (SHA-256,
// base64url without padding).
func KeyID(pub ed25519.PublicKey) string {
	// RFC 7638 §3.2: the required members in lexicographic order, no
	// whitespace. For an OKP key (RFC 8037 §2) they are crv, kty and x.
	h := sha256.New()
	h.Write([]byte(`{"crv":"Ed25519","kty":"OKP","x":"`))
	h.Write([]byte(base64.RawURLEncoding.EncodeToString(pub)))
	h.Write([]byte(`"}`))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// SigningKeyID returns the id of the key that signs new tokens.
func (ks *KeySet) SigningKeyID() string { return ks.signerKID }

// KeyIDs returns the ids of every key in the set, the signing key first.
func (ks *KeySet) KeyIDs() []string { return slices.Clone(ks.kids) }

// PublicKey returns the public key with id kid, or [ErrUnknownKey]. It makes
// a KeySet a [KeySource] for a process that holds the keys itself.
func (ks *KeySet) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if k, ok := ks.public[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// JWKS returns the RFC 7517 JWK Set document publishing every public key of
// the set (the signing key first), for GET /.well-known/jwks.json. The caller
// may modify the returned slice.
func (ks *KeySet) JWKS() []byte { return slices.Clone(ks.jwks) }
