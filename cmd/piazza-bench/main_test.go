package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestParseSources(t *testing.T) {
	for _, c := range []struct {
		in, probe, want string
		err             bool
	}{
		{in: "auto", want: "[127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7 127.0.0.8 127.0.0.9]"},
		{in: "auto", probe: "http://127.0.0.1:8080", want: "[127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7 127.0.0.8 127.0.0.9]"},
		{in: "auto", probe: "http://192.0.2.1:8080", want: "[]"},
		{in: "none", want: "[]"},
		{in: "10.0.0.1-10.0.0.3", want: "[10.0.0.1 10.0.0.2 10.0.0.3]"},
		{in: "10.0.0.7,10.0.0.9", want: "[10.0.0.7 10.0.0.9]"},
		{in: "10.0.0.3-10.0.0.1", err: true},
		{in: "nonsense", err: true},
	} {
		got, err := parseSources(c.in, c.probe)
		if c.err {
			if err == nil {
				t.Errorf("parseSources(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("parseSources(%q, %q) = %v, %v; want %s", c.in, c.probe, got, err, c.want)
		}
	}
}

func TestRunRefusesUnknownScenariosAndSizes(t *testing.T) {
	for _, args := range [][]string{{"nope"}, {"--size=huge"}, {"--rates=10,x", "api-mix"}, {"--admin-url=http://x"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		if err == nil || strings.Contains(out.String(), "results") {
			t.Errorf("run(%q) = %v, want an error before anything runs", args, err)
		}
	}
}
