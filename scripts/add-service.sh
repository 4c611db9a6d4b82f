#!/usr/bin/env bash
# add-service.sh scaffolds a new service with the standard boilerplate, so that the build, the
# linters and the tests pass right after it and the service runs in every mode:
#
#   proto/piazza/NAME/v1/NAME.proto     its gRPC contract (one Ping operation to start from)
#   gen/piazza/NAME/v1/                 the generated code (scripts/protoc.sh)
#   services/NAME/                      the package: New, Register, Run (NAME.go), the use cases
#                                       traced and counted (app/), the gRPC port (ports/), and a
#                                       first test over a real gRPC connection (NAME_test.go)
#   process/NAME_service.go             its assembly in the binary
#
# and registers it where the binary and the deployment list their services, each at a marker
# line that says so:
#
#   process/config.go                   process.Known ("// scaffold:known") and its setting
#                                       --NAME-service-addr ("// scaffold:config")
#   process/services.go                 the table of services a process may run
#                                       ("// scaffold:services")
#   deploy/docker-compose.yml           a NAME-service container ("# scaffold:services")
#   deploy/prometheus/prometheus.yml    its scrape target ("# scaffold:targets")
#
# Then `piazza serve --services=NAME` runs it alone and `piazza dev` with the others.
# scripts/remove-service.sh NAME takes all of it out again.
#
# Usage: scripts/add-service.sh NAME
#   NAME: lower-case letters and digits, starting with a letter (it is the Go package name, the
#   proto package piazza.NAME.v1 and the Compose service NAME-service).
#
# Nothing is changed unless every check passes; a failure half-way restores what was there.
set -euo pipefail

die() { echo "add-service.sh: $*" >&2; exit 1; }

if [[ $# -ne 1 || "$1" == -* ]]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi
name="$1"
Name="${name^}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# ------------------------------------------------------------------------------------- checks
[[ "$name" =~ ^[a-z][a-z0-9]{1,29}$ ]] ||
	die "'$name' is not a service name: use 2 to 30 lower-case letters and digits, starting with a letter"
case " break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var main test internal " in
*" $name "*) die "'$name' is a Go keyword or a reserved package name" ;;
esac
for path in "services/$name" "proto/piazza/$name" "gen/piazza/$name" "process/${name}_service.go"; do
	[[ ! -e "$path" ]] || die "$path already exists: service '$name' exists (scripts/remove-service.sh removes one)"
done
grep -qE "^[[:space:]]*\"$name\",[[:space:]]*$" process/config.go && die "process.Known already lists '$name'"
grep -qE "^  $name-service:" deploy/docker-compose.yml && die "deploy/docker-compose.yml already has a service '$name-service'"

declare -A markers=(
	[process/config.go]="// scaffold:known|// scaffold:config"
	[process/services.go]="// scaffold:services"
	[deploy/docker-compose.yml]="# scaffold:services"
	[deploy/prometheus/prometheus.yml]="# scaffold:targets"
)
missing=()
for file in "${!markers[@]}"; do
	IFS='|' read -ra wanted <<<"${markers[$file]}"
	for m in "${wanted[@]}"; do
		[[ -f "$file" ]] && [[ $(grep -cF -- "$m" "$file") -eq 1 ]] || missing+=("$file: a line with '$m'")
	done
done
if [[ ${#missing[@]} -gt 0 ]]; then
	printf 'add-service.sh: cannot find exactly one of each marker line it inserts at:\n' >&2
	printf '  %s\n' "${missing[@]}" >&2
	exit 1
fi
command -v go >/dev/null || die "go is not on PATH"
# The toolchain's own gofmt, whether or not its directory is on PATH.
gofmt="$(go env GOROOT)/bin/gofmt"

# --------------------------------------------------------------------------- undo on failure
backup="$(mktemp -d)"
created=()
edited=(process/config.go process/services.go deploy/docker-compose.yml deploy/prometheus/prometheus.yml)
for file in "${edited[@]}"; do
	mkdir -p "$backup/$(dirname "$file")"
	cp -p "$file" "$backup/$file"
done
done_ok=false
cleanup() {
	if [[ "$done_ok" != true ]]; then
		echo "add-service.sh: failed; restoring the tree as it was" >&2
		for path in "${created[@]}"; do rm -rf "$path"; done
		for file in "${edited[@]}"; do cp -p "$backup/$file" "$file"; done
	fi
	rm -rf "$backup"
}
trap cleanup EXIT

# render PATH: writes stdin to PATH (which must not exist), NAME/Name substituted.
render() {
	local path="$1"
	mkdir -p "$(dirname "$path")"
	sed -e "s/__name__/$name/g" -e "s/__Name__/$Name/g" >"$path"
}

# insert_before FILE MARKER: inserts stdin (NAME/Name substituted) before the marker line.
insert_before() {
	local file="$1" marker="$2" block
	block="$(mktemp)"
	sed -e "s/__name__/$name/g" -e "s/__Name__/$Name/g" >"$block"
	awk -v marker="$marker" -v block="$block" '
		index($0, marker) && !done { while ((getline line < block) > 0) print line; done = 1 }
		{ print }
	' "$file" >"$file.tmp"
	mv "$file.tmp" "$file"
	rm -f "$block"
}

# ------------------------------------------------------------------------------- the contract
created+=("proto/piazza/$name")
render "proto/piazza/$name/v1/$name.proto" <<'EOF'
// Package piazza.__name__.v1 is the contract of __name__-service. Errors carry a platform error
// code in their status details.
//
// Scaffolded by scripts/add-service.sh: Ping shows the whole path working; replace it with the
// service's operations and run `make generate`.
syntax = "proto3";

package piazza.__name__.v1;

option go_package = "github.com/piazza-social/piazza/gen/piazza/__name__/v1;__name__v1";

import "google/protobuf/timestamp.proto";

service __Name__Service {
  // Ping answers with the message it was sent and the time the service handled it.
  // validation_failed when the message is empty or longer than 100 characters.
  rpc Ping(PingRequest) returns (PingResponse);
}

message PingRequest {
  string message = 1;
}

message PingResponse {
  string message = 1;
  google.protobuf.Timestamp handled_at = 2;
}
EOF
created+=("gen/piazza/$name")
scripts/protoc.sh

# -------------------------------------------------------------------------------- the package
created+=("services/$name")
render "services/$name/$name.go" <<'EOF'
// Package __name__ is __name__-service, served over gRPC (piazza.__name__.v1.__Name__Service).
//
// The service is assembled from its layers: app (the use cases, each traced and counted) and
// ports (the gRPC server); add domain (the rules) and adapters (stores, clients) as it grows.
// process/__name___service.go runs it in the binary: `piazza serve --services=__name__` alone,
// `piazza dev` together with the other services.
package __name__

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	__name__v1 "github.com/piazza-social/piazza/gen/piazza/__name__/v1"
	"github.com/piazza-social/piazza/services/__name__/app"
	"github.com/piazza-social/piazza/services/__name__/ports"
)

// Config configures the service. Zero fields take the defaults.
type Config struct {
	// TracerProvider makes the spans of the use cases; nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider makes the service's instruments; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// Deps are what the service runs on: its stores and the clients of the services it calls,
// built by process. None yet.
type Deps struct{}

// Service is a __name__-service instance.
type Service struct {
	app  *app.Application
	grpc *ports.GRPCServer
	log  *slog.Logger
}

// New builds the service. It does no I/O.
func New(cfg Config, _ Deps, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("service", "__name__"))
	a, err := app.New(app.Config{TracerProvider: cfg.TracerProvider, MeterProvider: cfg.MeterProvider}, log)
	if err != nil {
		return nil, fmt.Errorf("__name__: %w", err)
	}
	return &Service{app: a, grpc: ports.NewGRPCServer(a), log: log}, nil
}

// Register registers the __Name__Service gRPC server on r (an *rpc.Server).
func (s *Service) Register(r grpc.ServiceRegistrar) {
	__name__v1.Register__Name__ServiceServer(r, s.grpc)
}

// App returns the application, for in-process callers and tests.
func (s *Service) App() *app.Application { return s.app }

// Run does the service's background work until ctx is cancelled, then returns nil. There is
// none yet: it only waits, so that process runs every service the same way.
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
EOF

render "services/$name/app/app.go" <<'EOF'
// Package app is __name__-service's application layer: its use cases as one plain struct of
// handlers, each wrapped in a span and counted by outcome, with every error turned into an
// *errs.Error (a code clients can rely on) at its edge.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/errs"
)

// instrumentationName names the tracer and meter of the service.
const instrumentationName = "github.com/piazza-social/piazza/services/__name__"

// Handler is one use case: it handles a command or query Q and answers R.
type Handler[Q, R any] interface {
	Handle(ctx context.Context, q Q) (R, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc[Q, R any] func(ctx context.Context, q Q) (R, error)

// Handle calls f.
func (f HandlerFunc[Q, R]) Handle(ctx context.Context, q Q) (R, error) { return f(ctx, q) }

// Application lists the use cases of __name__-service. Every handler returns errors as
// *errs.Error.
type Application struct {
	Ping Handler[Ping, Pong]
}

// Ping asks for Message back.
type Ping struct {
	Message string
}

// Pong answers a Ping: the message and when the service handled it.
type Pong struct {
	Message   string
	HandledAt time.Time
}

// MaxMessageLength bounds Ping.Message, in characters.
const MaxMessageLength = 100

// Config configures the application. Zero fields take the defaults.
type Config struct {
	// TracerProvider makes one span per use case call; nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider makes the __name__.requests counter; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// New builds the application.
func New(cfg Config, log *slog.Logger) (*Application, error) {
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	requests, err := cfg.MeterProvider.Meter(instrumentationName).Int64Counter("__name__.requests",
		metric.WithDescription("Use cases handled by __name__-service, by use case and outcome (ok or the error code)."),
		metric.WithUnit("{request}"))
	if err != nil {
		return nil, fmt.Errorf("__name__ app: %w", err)
	}
	o := observer{tracer: cfg.TracerProvider.Tracer(instrumentationName), requests: requests, log: log}
	s := &service{now: cfg.Now}
	return &Application{
		Ping: observe(o, "Ping", s.ping),
	}, nil
}

// service implements the use cases.
type service struct {
	now func() time.Time
}

func (s *service) ping(_ context.Context, q Ping) (Pong, error) {
	if n := utf8.RuneCountInString(q.Message); n == 0 || n > MaxMessageLength {
		return Pong{}, errs.Validation("The message is not valid.",
			errs.Field("/message", fmt.Sprintf("must be 1 to %d characters", MaxMessageLength)))
	}
	return Pong{Message: q.Message, HandledAt: s.now().UTC()}, nil
}

// observer holds what observe needs: the cross-cutting concerns of every use case, kept out
// of the use cases themselves.
type observer struct {
	tracer   trace.Tracer
	requests metric.Int64Counter
	log      *slog.Logger
}

// observe wraps the use case f named name: a span around each call, the call counted by
// outcome, the error turned into an *errs.Error and, when unexpected (internal), logged with
// the trace id so a client's 500 leads to it.
func observe[Q, R any](o observer, name string, f func(context.Context, Q) (R, error)) Handler[Q, R] {
	return HandlerFunc[Q, R](func(ctx context.Context, q Q) (R, error) {
		ctx, span := o.tracer.Start(ctx, "__name__."+name)
		defer span.End()
		r, err := f(ctx, q)
		outcome := "ok"
		if err != nil {
			e := errs.From(err)
			outcome = string(e.Code)
			span.SetStatus(codes.Error, outcome)
			if e.Code == errs.Internal {
				span.RecordError(err)
				o.log.ErrorContext(ctx, "use case failed", slog.String("use_case", name), slog.String("error", err.Error()))
			}
			err = e
		}
		o.requests.Add(ctx, 1, metric.WithAttributes(attribute.String("use_case", name), attribute.String("outcome", outcome)))
		if err != nil {
			var zero R
			return zero, err
		}
		return r, nil
	})
}
EOF

render "services/$name/ports/grpc.go" <<'EOF'
// Package ports holds __name__-service's ports: the gRPC server implementing
// __name__v1.__Name__ServiceServer. It converts between the wire types and the application's,
// and calls the application; errors come back from the application as *errs.Error, which the
// platform's gRPC server sends with their code.
package ports

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	__name__v1 "github.com/piazza-social/piazza/gen/piazza/__name__/v1"
	"github.com/piazza-social/piazza/services/__name__/app"
)

// GRPCServer serves the __Name__Service contract on top of the application.
type GRPCServer struct {
	__name__v1.Unimplemented__Name__ServiceServer
	app *app.Application
}

var _ __name__v1.__Name__ServiceServer = (*GRPCServer)(nil)

// NewGRPCServer returns the gRPC face of a.
func NewGRPCServer(a *app.Application) *GRPCServer { return &GRPCServer{app: a} }

// Ping answers with the message and the time it was handled.
func (s *GRPCServer) Ping(ctx context.Context, req *__name__v1.PingRequest) (*__name__v1.PingResponse, error) {
	pong, err := s.app.Ping.Handle(ctx, app.Ping{Message: req.GetMessage()})
	if err != nil {
		return nil, err
	}
	return &__name__v1.PingResponse{Message: pong.Message, HandledAt: timestamppb.New(pong.HandledAt)}, nil
}
EOF

render "services/$name/${name}_test.go" <<'EOF'
package __name___test

import (
	"context"
	"net"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	__name__v1 "github.com/piazza-social/piazza/gen/piazza/__name__/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/rpc"
	"github.com/piazza-social/piazza/services/__name__"
	"github.com/piazza-social/piazza/services/__name__/app"
)

// fixture is the service built as production builds it, served by a platform rpc server on a
// loopback port, with its spans and metrics recorded in memory.
type fixture struct {
	client  __name__v1.__Name__ServiceClient
	svc     *__name__.Service
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
}

func start(t *testing.T) fixture {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	metrics := sdkmetric.NewManualReader()
	svc, err := __name__.New(__name__.Config{
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(metrics)),
	}, __name__.Deps{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(rpc.ServerConfig{}, nil)
	svc.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	conn, err := rpc.Dial(rpc.ClientConfig{Target: ln.Addr().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return fixture{client: __name__v1.New__Name__ServiceClient(conn), svc: svc, spans: spans, metrics: metrics}
}

// requests returns the __name__.requests count of the use case and outcome.
func (f fixture) requests(t *testing.T, useCase, outcome string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.metrics.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "__name__.requests" || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				u, _ := dp.Attributes.Value("use_case")
				o, _ := dp.Attributes.Value("outcome")
				if u.AsString() == useCase && o.AsString() == outcome {
					n += dp.Value
				}
			}
		}
	}
	return n
}

func TestPingAnswersTheMessageOverGRPCTracedAndCounted(t *testing.T) {
	f := start(t)
	resp, err := f.client.Ping(t.Context(), &__name__v1.PingRequest{Message: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetMessage() != "hello" || resp.GetHandledAt().AsTime().IsZero() {
		t.Fatalf("Ping answered %v, want the message back with the time it was handled", resp)
	}
	var traced bool
	for _, s := range f.spans.Ended() {
		traced = traced || s.Name() == "__name__.Ping"
	}
	if !traced {
		t.Error("no __name__.Ping span was recorded")
	}
	if n := f.requests(t, "Ping", "ok"); n != 1 {
		t.Errorf("__name__.requests{use_case=Ping,outcome=ok} = %d, want 1", n)
	}
}

func TestPingRejectsAnEmptyOrOverlongMessageAsValidationFailed(t *testing.T) {
	f := start(t)
	for _, msg := range []string{"", strings.Repeat("é", app.MaxMessageLength+1)} {
		_, err := f.client.Ping(t.Context(), &__name__v1.PingRequest{Message: msg})
		if code := errs.CodeOf(err); code != errs.ValidationFailed {
			t.Errorf("Ping(%d characters): code %q (%v), want %q", len([]rune(msg)), code, err, errs.ValidationFailed)
		}
	}
	if n := f.requests(t, "Ping", string(errs.ValidationFailed)); n != 2 {
		t.Errorf("__name__.requests{use_case=Ping,outcome=validation_failed} = %d, want 2", n)
	}
}

func TestRunReturnsNilWhenItsContextIsCancelled(t *testing.T) {
	f := start(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.svc.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
EOF

# ------------------------------------------------------------------------------ registration
created+=("process/${name}_service.go")
render "process/${name}_service.go" <<'EOF'
package process

import (
	"context"

	"github.com/piazza-social/piazza/services/__name__"
)

// add__Name__ runs __name__-service in this process: its gRPC server on the process's gRPC
// listener, traced and measured like the others, and its background work in the group.
// Callers in other processes reach it at --__name__-service-addr.
func (a *assembly) add__Name__(_ context.Context) error {
	svc, err := __name__.New(__name__.Config{
		TracerProvider: a.tel.TracerProvider(),
		MeterProvider:  a.tel.MeterProvider(),
	}, __name__.Deps{}, a.log)
	if err != nil {
		return err
	}
	svc.Register(a.grpcServer)
	a.g.Add("__name__", svc.Run)
	return nil
}
EOF

insert_before process/config.go "// scaffold:known" <<'EOF'
	"__name__",
EOF
insert_before process/config.go "// scaffold:config" <<'EOF'
	__Name__ServiceAddr string `flag:"__name__-service-addr" help:"distributed mode: __name__-service gRPC address, when __name__ runs elsewhere"`
EOF
insert_before process/services.go "// scaffold:services" <<'EOF'
		{"__name__", a.add__Name__},
EOF
"$gofmt" -w process/config.go process/services.go

insert_before deploy/docker-compose.yml "# scaffold:services" <<'EOF'
  __name__-service:
    <<: *piazza-service
    command: ["serve", "--services=__name__"]
    labels:
      piazza.service: __name__
    environment:
      <<: *piazza-env
    depends_on:
      kafka:
        condition: service_healthy
      otel-collector:
        condition: service_started

EOF
indent="$(grep -F "# scaffold:targets" deploy/prometheus/prometheus.yml | sed 's/#.*//')"
insert_before deploy/prometheus/prometheus.yml "# scaffold:targets" <<EOF
${indent}- targets: ["__name__-service:9090"]
${indent}  labels: {service: __name__}
EOF

"$gofmt" -l "services/$name" "process/${name}_service.go" | grep . && die "generated Go code is not gofmt-clean"

done_ok=true
cat <<EOF
add-service.sh: added $name-service.
  contract        proto/piazza/$name/v1/$name.proto (regenerate with: make generate)
  code            services/$name/ (app/, ports/, ${name}_test.go)
  in the binary   process/${name}_service.go, process.Known, --$name-service-addr
  deployment      deploy/docker-compose.yml ($name-service), deploy/prometheus/prometheus.yml
Next: go build ./... && go test ./services/$name/... ; then 'piazza serve --services=$name'.
EOF
