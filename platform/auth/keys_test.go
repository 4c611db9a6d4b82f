package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/piazza-social/piazza/platform/auth"
)

func keyFileNames(t *testing.T, dir string) ([]string, error) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".pem") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func removeFile(dir, name string) error { return os.Remove(filepath.Join(dir, name)) }

func writeKey(t *testing.T, dir, name string, key any) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func kidOf(k ed25519.PrivateKey) string { return auth.KeyID(k.Public().(ed25519.PublicKey)) }

func TestKeyIDIsTheRFC7638Thumbprint(t *testing.T) {
	// RFC 8037 Appendix A.3.
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := auth.KeyID(x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("KeyID = %s, want %s", got, want)
	}
}

func TestLoadKeyDirCreatesTheFirstKeyWhenAllowed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ks, err := auth.LoadKeyDir(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %v, want 0700", st.Mode().Perm())
	}
	names, err := keyFileNames(t, dir)
	if err != nil || len(names) != 1 {
		t.Fatalf("key files %v (%v), want exactly one", names, err)
	}
	if !regexp.MustCompile(`^\d{8}T\d{6}Z\.pem$`).MatchString(names[0]) {
		t.Errorf("key file %q is not named by its UTC creation time", names[0])
	}
	st, err = os.Stat(filepath.Join(dir, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("key directory holds %d entries, want only the key (no temporary files)", len(entries))
	}

	for _, create := range []bool{false, true} {
		again, err := auth.LoadKeyDir(dir, create)
		if err != nil {
			t.Fatal(err)
		}
		if again.SigningKeyID() != ks.SigningKeyID() {
			t.Errorf("reload (createIfEmpty=%v) signs with %s, want the stored %s", create, again.SigningKeyID(), ks.SigningKeyID())
		}
	}
	if names, _ := keyFileNames(t, dir); len(names) != 1 {
		t.Errorf("reloading created keys: %v", names)
	}
}

func TestLoadKeyDirWithoutKeysFailsUnlessAllowed(t *testing.T) {
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "README"), []byte("keys go here"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"empty": empty, "missing": filepath.Join(empty, "nope")} {
		if _, err := auth.LoadKeyDir(dir, false); err == nil {
			t.Errorf("%s directory: LoadKeyDir succeeded without createIfEmpty", name)
		}
	}
	if names, _ := keyFileNames(t, empty); len(names) != 0 {
		t.Errorf("LoadKeyDir without createIfEmpty created %v", names)
	}
}

func TestLoadKeyDirSignsWithTheLastFileAndPublishesAll(t *testing.T) {
	dir := t.TempDir()
	older, newer := newKey(t), newKey(t)
	// Written newest first: the names decide, not the write order.
	writeKey(t, dir, "20261127T053000Z.pem", newer)
	writeKey(t, dir, "20260101T000000Z.pem", older)
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "zzz.pem"), 0o700); err != nil { // a directory, ignored
		t.Fatal(err)
	}

	ks, err := auth.LoadKeyDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if ks.SigningKeyID() != kidOf(newer) {
		t.Fatalf("signing key %s, want the last file's %s", ks.SigningKeyID(), kidOf(newer))
	}
	if got, want := ks.KeyIDs(), []string{kidOf(newer), kidOf(older)}; !slices.Equal(got, want) {
		t.Fatalf("KeyIDs %v, want %v", got, want)
	}
	keys, err := auth.ParseJWKS(ks.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[kidOf(older)].Equal(older.Public()) || !keys[kidOf(newer)].Equal(newer.Public()) {
		t.Fatalf("JWKS keys %v, want both public keys under their kids", keys)
	}
}

func TestLoadKeyDirRejectsBrokenKeyFiles(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	good, err := x509.MarshalPKCS8PrivateKey(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	goodPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: good})
	for name, content := range map[string][]byte{
		"not PEM":            []byte("hello"),
		"empty":              nil,
		"wrong block type":   pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: good}),
		"not PKCS#8":         pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}),
		"an ECDSA key":       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
		"data after the key": append(slices.Clone(goodPEM), "trailing"...),
		"two keys":           append(slices.Clone(goodPEM), goodPEM...),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeKey(t, dir, "20260101T000000Z.pem", newKey(t))
			if err := os.WriteFile(filepath.Join(dir, "20261127T053000Z.pem"), content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := auth.LoadKeyDir(dir, true)
			if err == nil || !strings.Contains(err.Error(), "20261127T053000Z.pem") {
				t.Fatalf("LoadKeyDir = %v, want an error naming the broken file", err)
			}
		})
	}
}

func TestGenerateKeyFileNamesSortInCreationOrder(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	// Several keys within (most likely) one second: none may overwrite
	// another, and the last generated must sort last.
	for range 3 {
		p, err := auth.GenerateKeyFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, filepath.Base(p))
	}
	names, err := keyFileNames(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, paths) {
		t.Fatalf("files sort as %v, want creation order %v", names, paths)
	}
	ks, err := auth.LoadKeyDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.KeyIDs()) != 3 {
		t.Fatalf("loaded %d distinct keys, want 3", len(ks.KeyIDs()))
	}
	if err := os.Remove(filepath.Join(dir, paths[0])); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, paths[1])); err != nil {
		t.Fatal(err)
	}
	only, err := auth.LoadKeyDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if ks.SigningKeyID() != only.SigningKeyID() {
		t.Fatal("the signing key is not the last generated one")
	}
}

func TestNewKeySetLastKeySignsAndDuplicatesCollapse(t *testing.T) {
	a, b := newKey(t), newKey(t)
	ks := newKeySet(t, a, b, a)
	if ks.SigningKeyID() != kidOf(a) {
		t.Fatalf("signing key %s, want the last given %s", ks.SigningKeyID(), kidOf(a))
	}
	if got := ks.KeyIDs(); len(got) != 2 {
		t.Fatalf("KeyIDs %v, want two distinct keys", got)
	}
	if _, err := auth.NewKeySet(); err == nil {
		t.Fatal("an empty key set was accepted")
	}
	if _, err := auth.NewKeySet(ed25519.PrivateKey("short")); err == nil {
		t.Fatal("a malformed private key was accepted")
	}
}

func TestJWKSDocumentShape(t *testing.T) {
	k := newKey(t)
	ks := newKeySet(t, k)
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(ks.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kidOf(k),
		"x": base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey)),
	}
	if len(doc.Keys) != 1 || !mapsEqual(doc.Keys[0], want) {
		t.Fatalf("JWKS %s, want one key %v", ks.JWKS(), want)
	}
	// The document is the caller's to modify.
	j := ks.JWKS()
	j[0] = 'X'
	if ks.JWKS()[0] != '{' {
		t.Fatal("modifying the returned JWKS changed the key set's")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestParseJWKS(t *testing.T) {
	k := newKey(t)
	x := base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
	kid := kidOf(k)
	good := `{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"` + kid + `"}`
	set := func(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }

	accepted := map[string]string{
		"minimal Ed25519 key":      set(good),
		"with use and alg":         set(`{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"` + kid + `","use":"sig","alg":"EdDSA"}`),
		"unknown members":          `{"keys":[` + good[:len(good)-1] + `,"x5t":"abc","ext":true}],"other":1}`,
		"an RSA key is skipped":    set(`{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"rsa"}`, good),
		"an X25519 key is skipped": set(`{"kty":"OKP","crv":"X25519","x":"`+x+`","kid":"xdh"}`, good),
		"an encryption key is skipped": set(`{"kty":"OKP","crv":"Ed25519","x":"`+x+`","kid":"enc","use":"enc"}`,
			good),
		"another alg is skipped": set(`{"kty":"OKP","crv":"Ed25519","x":"`+x+`","kid":"o","alg":"ES256"}`, good),
		"key_ops without verify is skipped": set(`{"kty":"OKP","crv":"Ed25519","x":"`+x+
			`","kid":"s","key_ops":["sign"]}`, good),
		"the same key twice": set(good, good),
	}
	for name, doc := range accepted {
		t.Run("accepts "+name, func(t *testing.T) {
			keys, err := auth.ParseJWKS([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 || !keys[kid].Equal(k.Public()) {
				t.Fatalf("keys %v, want only %s", keys, kid)
			}
		})
	}

	other := base64.RawURLEncoding.EncodeToString(newKey(t).Public().(ed25519.PublicKey))
	rejected := map[string]string{
		"empty input":          ``,
		"not JSON":             `not json`,
		"an array":             `[` + good + `]`,
		"no keys member":       `{"key":[` + good + `]}`,
		"keys not an array":    `{"keys":` + good + `}`,
		"keys null":            `{"keys":null}`,
		"a key not an object":  set(`"abc"`),
		"kty not a string":     set(`{"kty":1,"crv":"Ed25519","x":"` + x + `","kid":"a"}`),
		"no usable key":        set(`{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"rsa"}`),
		"empty set":            set(),
		"no kid":               set(`{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}`),
		"x missing":            set(`{"kty":"OKP","crv":"Ed25519","kid":"a"}`),
		"x too short":          set(`{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"a"}`),
		"x not base64url":      set(`{"kty":"OKP","crv":"Ed25519","x":"` + x[:len(x)-2] + `+/","kid":"a"}`),
		"x padded":             set(`{"kty":"OKP","crv":"Ed25519","x":"` + x + `=","kid":"a"}`),
		"a private key":        set(`{"kty":"OKP","crv":"Ed25519","x":"` + x + `","d":"` + x + `","kid":"` + kid + `"}`),
		"one kid for two keys": set(good, `{"kty":"OKP","crv":"Ed25519","x":"`+other+`","kid":"`+kid+`"}`),
		"trailing data":        set(good) + `{}`,
	}
	for name, doc := range rejected {
		t.Run("rejects "+name, func(t *testing.T) {
			if keys, err := auth.ParseJWKS([]byte(doc)); err == nil {
				t.Fatalf("accepted %s: %v", doc, keys)
			}
		})
	}
}

func FuzzParseJWKS(f *testing.F) {
	k := newKey(f)
	f.Add(newKeySet(f, k, newKey(f)).JWKS())
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"a"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		keys, err := auth.ParseJWKS(doc)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatal("no error and no key")
		}
		for kid, k := range keys {
			if kid == "" || len(k) != ed25519.PublicKeySize {
				t.Fatalf("accepted kid %q with a %d-byte key", kid, len(k))
			}
		}
	})
}
