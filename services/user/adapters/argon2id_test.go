package adapters_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/piazza-social/piazza/services/user/adapters"
)

var tiny = adapters.Argon2idParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func TestArgon2idHashIsAPHCStringThatVerifies(t *testing.T) {
	h, err := adapters.NewArgon2id(tiny)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(enc) {
		t.Fatalf("hash %q is not a PHC argon2id string with a 16-byte salt and 32-byte key", enc)
	}
	if ok, err := h.Verify("correct horse battery", enc); err != nil || !ok {
		t.Fatalf("right password: %v, %v", ok, err)
	}
	if ok, err := h.Verify("correct horse batterY", enc); err != nil || ok {
		t.Fatalf("wrong password: %v, %v", ok, err)
	}
	again, _ := h.Hash("correct horse battery")
	if again == enc {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestArgon2idVerifiesHashesMadeWithOtherParameters(t *testing.T) {
	old, _ := adapters.NewArgon2id(adapters.Argon2idParams{MemoryKiB: 32, Iterations: 2, Parallelism: 2})
	enc, err := old.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	current, _ := adapters.NewArgon2id(tiny)
	if ok, err := current.Verify("correct horse battery", enc); err != nil || !ok {
		t.Fatalf("hash with older parameters: %v, %v", ok, err)
	}
}

func TestArgon2idDefaultsAreOWASPs(t *testing.T) {
	h, err := adapters.NewArgon2id(adapters.Argon2idParams{})
	if err != nil {
		t.Fatal(err)
	}
	if p := h.Params(); p.MemoryKiB != 19456 || p.Iterations != 2 || p.Parallelism != 1 || p.SaltBytes != 16 || p.KeyBytes != 32 {
		t.Errorf("defaults %+v", p)
	}
}

func TestArgon2idRefusesMalformedOrAbusiveHashes(t *testing.T) {
	h, _ := adapters.NewArgon2id(tiny)
	good, _ := h.Hash("correct horse battery")
	parts := strings.Split(good, "$")
	for name, enc := range map[string]string{
		"empty":            "",
		"bcrypt":           "$2a$10$abcdefghijklmnopqrstuv",
		"argon2i":          strings.Replace(good, "argon2id", "argon2i", 1),
		"old version":      strings.Replace(good, "v=19", "v=16", 1),
		"missing param":    strings.Replace(good, "m=64,t=1,p=1", "m=64,t=1", 1),
		"huge memory":      strings.Replace(good, "m=64", "m=4194304", 1),
		"zero parallelism": strings.Replace(good, "p=1", "p=0", 1),
		"bad salt":         strings.Join([]string{parts[0], parts[1], parts[2], parts[3], "!!!", parts[5]}, "$"),
		"short key":        strings.Join([]string{parts[0], parts[1], parts[2], parts[3], parts[4], "AAAA"}, "$"),
	} {
		if ok, err := h.Verify("correct horse battery", enc); !errors.Is(err, adapters.ErrMalformedHash) || ok {
			t.Errorf("%s: %v, %v; want ErrMalformedHash", name, ok, err)
		}
	}
	if _, err := adapters.NewArgon2id(adapters.Argon2idParams{MemoryKiB: 4}); err == nil {
		t.Error("memory below 8 KiB per lane accepted")
	}
}
