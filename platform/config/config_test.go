package config_test

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/config"
)

type sample struct {
	Addr     string        `flag:"http-addr" default:"127.0.0.1:8080" help:"address"`
	Level    slog.Level    `flag:"log-level" default:"info"`
	Timeout  time.Duration `flag:"timeout" default:"5s"`
	Brokers  []string      `flag:"brokers"`
	Verbose  bool          `flag:"verbose"`
	Ratio    float64       `flag:"ratio" default:"0.5"`
	OTLP     string        `flag:"otlp-endpoint" env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	Password string        `flag:"password" secret:"true"`
	Nested   struct {
		DatabaseURL string `flag:"database-url"`
		Workers     int    `flag:"workers" default:"4"`
	}
}

func load(t *testing.T, args []string, env map[string]string) (sample, error) {
	t.Helper()
	var cfg sample
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := config.Load(fs, &cfg, config.Source{
		Prefix: "PIAZZA",
		Args:   args,
		LookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
	})
	return cfg, err
}

func TestLoadAppliesDefaultsThenEnvironmentThenFlags(t *testing.T) {
	cfg, err := load(t,
		[]string{"--timeout=2s", "--verbose"},
		map[string]string{"PIAZZA_TIMEOUT": "9s", "PIAZZA_LOG_LEVEL": "debug", "PIAZZA_BROKERS": "a:1, b:2", "PIAZZA_WORKERS": "8", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:8080" {
		t.Errorf("default not applied: %q", cfg.Addr)
	}
	if cfg.Level != slog.LevelDebug {
		t.Errorf("environment not applied: level %v", cfg.Level)
	}
	if cfg.Timeout != 2*time.Second {
		t.Errorf("flag must beat environment: timeout %v", cfg.Timeout)
	}
	if cfg.OTLP != "collector:4317" {
		t.Errorf("explicit env name not read: %q", cfg.OTLP)
	}
	if !cfg.Verbose || cfg.Ratio != 0.5 || cfg.Nested.Workers != 8 {
		t.Errorf("unexpected values: %+v", cfg)
	}
	if strings.Join(cfg.Brokers, "|") != "a:1|b:2" {
		t.Errorf("list not split and trimmed: %q", cfg.Brokers)
	}
}

func TestLoadNamesTheSettingOfABadValue(t *testing.T) {
	_, err := load(t, nil, map[string]string{"PIAZZA_LOG_LEVEL": "verbose"})
	var cerr *config.Error
	if !errors.As(err, &cerr) {
		t.Fatalf("want *config.Error, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"PIAZZA_LOG_LEVEL", "--log-level", "verbose"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error must be one line: %q", msg)
	}
}

func TestLoadRejectsBadFlagsAndStrayArguments(t *testing.T) {
	for _, args := range [][]string{{"--timeout=soon"}, {"--no-such-flag"}, {"extra"}} {
		if _, err := load(t, args, nil); err == nil {
			t.Errorf("args %q: want error", args)
		}
	}
}

func TestAttrsMaskSecretsAndURLPasswords(t *testing.T) {
	cfg, err := load(t, []string{"--password=hunter2", "--database-url=postgres://app:s3cret@db:5432/x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, a := range config.Attrs(&cfg) {
		b.WriteString(a.String() + " ")
	}
	out := b.String()
	for _, leaked := range []string{"hunter2", "s3cret"} {
		if strings.Contains(out, leaked) {
			t.Errorf("secret %q leaked: %s", leaked, out)
		}
	}
	for _, want := range []string{"postgres://app:xxxxx@db:5432/x", "http-addr=127.0.0.1:8080", "log-level=INFO"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in %s", want, out)
		}
	}
}
