package cassandratest

import (
	"strings"
	"testing"
)

func TestNewNameIsAValidUniqueKeyspaceName(t *testing.T) {
	t.Run(strings.Repeat("A very long Test-Name/with odd chars ", 4), func(t *testing.T) {
		a, b := newName(t), newName(t)
		if a == b {
			t.Fatalf("two names are equal: %s", a)
		}
		for _, n := range []string{a, b} {
			if len(n) > maxKeyspace {
				t.Errorf("%s is %d characters, over %d", n, len(n), maxKeyspace)
			}
			if !strings.HasPrefix(n, "it_testnewnameisavalid") {
				t.Errorf("%s does not carry the test's name", n)
			}
			for _, r := range n {
				if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
					t.Fatalf("%s holds %q", n, r)
				}
			}
		}
	})
}
