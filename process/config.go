package process

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// Mode says how a process finds its infrastructure.
type Mode string

const (
	// Embedded runs every service in one process on SQLite, with the event bus, presence and
	// routing in-process. Nothing else needs to be installed. (`piazza dev`)
	Embedded Mode = "embedded"
	// Distributed runs the selected services on real Kafka, Redis, PostgreSQL and Cassandra.
	// (`piazza serve --services=...`)
	Distributed Mode = "distributed"
)

// Config is the whole configuration of one process, read once in main from flags and PIAZZA_*
// environment variables (see platform/config) and validated before anything starts.
type Config struct {
	Mode Mode `json:"-"`

	Services   []string `flag:"services" help:"services to run in this process, comma-separated (distributed mode; the embedded default runs all): gateway"`
	InstanceID string   `flag:"instance-id" help:"unique id of this process among its peers (default: host name and a random suffix)"`

	HTTPAddr  string `flag:"http-addr" default:"127.0.0.1:8080" help:"address of the public HTTP API (gateway)"`
	AdminAddr string `flag:"admin-addr" default:"127.0.0.1:9090" help:"address of /metrics, /healthz and /readyz"`
	Pprof     bool   `flag:"pprof" help:"serve /debug/pprof on the admin address"`
	DataDir   string `flag:"data-dir" default:"./data" help:"embedded mode: directory of the SQLite databases"`

	KafkaBrokers []string `flag:"kafka-brokers" help:"distributed mode: Kafka bootstrap brokers, host:port,..."`

	LogLevel         slog.Level    `flag:"log-level" default:"info" help:"debug, info, warn or error"`
	OTLPEndpoint     string        `flag:"otlp-endpoint" env:"OTEL_EXPORTER_OTLP_ENDPOINT" help:"OTLP gRPC collector (host:port or URL); empty disables export"`
	TraceSampleRatio float64       `flag:"trace-sample-ratio" default:"1" help:"fraction of new traces sampled, in (0,1]"`
	ShutdownTimeout  time.Duration `flag:"shutdown-timeout" default:"15s" help:"how long draining may take on SIGTERM"`
	RequestTimeout   time.Duration `flag:"request-timeout" default:"10s" help:"upper bound of one public API request (streams excepted)"`
	MaxBodyBytes     int64         `flag:"max-body-bytes" default:"1048576" help:"largest accepted request body"`
}

// Known lists the services this binary can run, in start order.
var Known = []string{"gateway"}

// settingError names a setting by its environment variable and flag, like config.Error.
func settingError(flagName, format string, args ...any) error {
	env := "PIAZZA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
	return fmt.Errorf("%s (--%s): %s", env, flagName, fmt.Sprintf(format, args...))
}

// Validate checks the settings against each other and fills derived defaults. Errors name the
// setting so a mistake reads as one clear line.
func (c *Config) Validate() error {
	switch c.Mode {
	case Embedded:
		if len(c.Services) > 0 {
			return settingError("services", "the embedded default runs every service; use `piazza serve` to choose")
		}
		c.Services = slices.Clone(Known)
		if len(c.KafkaBrokers) > 0 {
			return settingError("kafka-brokers", "the embedded default uses its in-process bus; use `piazza serve` for Kafka")
		}
		if c.DataDir == "" {
			return settingError("data-dir", "must not be empty")
		}
	case Distributed:
		if len(c.Services) == 0 {
			return settingError("services", "name at least one of: %s", strings.Join(Known, ", "))
		}
		for _, s := range c.Services {
			if !slices.Contains(Known, s) {
				return settingError("services", "unknown service %q (known: %s)", s, strings.Join(Known, ", "))
			}
		}
		if len(c.KafkaBrokers) == 0 {
			return settingError("kafka-brokers", "required in distributed mode")
		}
	default:
		return fmt.Errorf("unknown mode %q", c.Mode)
	}
	if c.TraceSampleRatio <= 0 || c.TraceSampleRatio > 1 {
		return settingError("trace-sample-ratio", "must be in (0,1], got %v", c.TraceSampleRatio)
	}
	if c.ShutdownTimeout <= 0 {
		return settingError("shutdown-timeout", "must be positive")
	}
	if c.RequestTimeout <= 0 {
		return settingError("request-timeout", "must be positive")
	}
	if c.MaxBodyBytes <= 0 {
		return settingError("max-body-bytes", "must be positive")
	}
	if c.InstanceID == "" {
		id, err := defaultInstanceID()
		if err != nil {
			return err
		}
		c.InstanceID = id
	}
	return nil
}

// Runs reports whether this process runs the named service.
func (c *Config) Runs(service string) bool { return slices.Contains(c.Services, service) }

// defaultInstanceID is the host name plus a random suffix: unique among replicas on one host and
// across restarts, so a restarted gateway never inherits a dead one's routing entries.
func defaultInstanceID() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "piazza"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", errors.New("instance id: no randomness available")
	}
	return host + "-" + hex.EncodeToString(b[:]), nil
}
