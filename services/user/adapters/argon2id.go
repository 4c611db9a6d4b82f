package adapters

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2idParams are the cost parameters of new password hashes. Existing hashes carry their
// own parameters, so changing these only affects hashes made afterwards.
type Argon2idParams struct {
	// MemoryKiB is the memory cost in KiB. Default 19456 (19 MiB), OWASP's minimum
	// recommendation for argon2id with Iterations 2.
	MemoryKiB uint32
	// Iterations is the time cost. Default 2.
	Iterations uint32
	// Parallelism is the number of lanes. Default 1.
	Parallelism uint8
	// SaltBytes and KeyBytes size the random salt and the derived key. Defaults 16 and 32.
	SaltBytes uint32
	KeyBytes  uint32
}

func (p *Argon2idParams) fillDefaults() {
	if p.MemoryKiB == 0 {
		p.MemoryKiB = 19456
	}
	if p.Iterations == 0 {
		p.Iterations = 2
	}
	if p.Parallelism == 0 {
		p.Parallelism = 1
	}
	if p.SaltBytes == 0 {
		p.SaltBytes = 16
	}
	if p.KeyBytes == 0 {
		p.KeyBytes = 32
	}
}

// Argon2id hashes and verifies passwords with argon2id, in the PHC string format:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// with salt and key in unpadded standard base64. It is safe for concurrent use.
type Argon2id struct {
	params Argon2idParams
}

// NewArgon2id returns a hasher making new hashes with p (zero fields take the defaults). It
// fails for parameters argon2 refuses (memory below 8 KiB per lane).
func NewArgon2id(p Argon2idParams) (*Argon2id, error) {
	p.fillDefaults()
	if p.MemoryKiB < 8*uint32(p.Parallelism) {
		return nil, fmt.Errorf("argon2id: memory %d KiB is below 8 KiB per lane (parallelism %d)", p.MemoryKiB, p.Parallelism)
	}
	if p.SaltBytes < 8 || p.KeyBytes < 16 {
		return nil, errors.New("argon2id: salt must be at least 8 bytes and key at least 16 bytes")
	}
	return &Argon2id{params: p}, nil
}

// Params returns the parameters of new hashes.
func (a *Argon2id) Params() Argon2idParams { return a.params }

var phcEncoding = base64.RawStdEncoding

// Hash returns the PHC string of password under a fresh random salt.
func (a *Argon2id) Hash(password string) (string, error) {
	salt := make([]byte, a.params.SaltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("argon2id: salt: %w", err)
	}
	p := a.params
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyBytes)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism,
		phcEncoding.EncodeToString(salt), phcEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches the PHC string encoded, using the parameters and
// salt recorded in it and a constant-time comparison. A string that is not an argon2id hash
// this package can read is an error, not a mismatch.
func (a *Argon2id) Verify(password, encoded string) (bool, error) {
	h, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), h.salt, h.iterations, h.memory, h.parallelism, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

// Limits on the parameters read from a stored hash: a corrupted row must not make one login
// allocate gigabytes.
const (
	maxStoredMemoryKiB  = 1 << 20 // 1 GiB
	maxStoredIterations = 64
)

type phc struct {
	memory, iterations uint32
	parallelism        uint8
	salt, key          []byte
}

// ErrMalformedHash is returned by Verify for a string it cannot read.
var ErrMalformedHash = errors.New("argon2id: malformed password hash")

func parsePHC(s string) (phc, error) {
	var h phc
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return h, ErrMalformedHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, fmt.Errorf("%w: unsupported version %q", ErrMalformedHash, parts[2])
	}
	seen := 0
	for kv := range strings.SplitSeq(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return h, ErrMalformedHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return h, ErrMalformedHash
		}
		switch k {
		case "m":
			h.memory = uint32(n)
		case "t":
			h.iterations = uint32(n)
		case "p":
			if n > 255 {
				return h, ErrMalformedHash
			}
			h.parallelism = uint8(n)
		default:
			return h, ErrMalformedHash
		}
		seen++
	}
	if seen != 3 || h.parallelism == 0 || h.iterations == 0 || h.iterations > maxStoredIterations ||
		h.memory < 8*uint32(h.parallelism) || h.memory > maxStoredMemoryKiB {
		return h, ErrMalformedHash
	}
	var err error
	if h.salt, err = phcEncoding.Strict().DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return h, ErrMalformedHash
	}
	if h.key, err = phcEncoding.Strict().DecodeString(parts[5]); err != nil || len(h.key) < 16 {
		return h, ErrMalformedHash
	}
	return h, nil
}
