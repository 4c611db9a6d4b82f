package errs

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// declaredCodes parses errs.go and returns every constant declared with type
// Code, so the totality test does not trust the table to list itself.
func declaredCodes(t *testing.T) []Code {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errs.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []Code
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for i := range vs.Names {
				lit := vs.Values[i].(*ast.BasicLit)
				out = append(out, Code(strings.Trim(lit.Value, `"`)))
			}
		}
	}
	if len(out) < 11 {
		t.Fatalf("parsed only %d Code constants from errs.go: %v", len(out), out)
	}
	return out
}

func TestEveryDeclaredCodeHasATableRow(t *testing.T) {
	declared := declaredCodes(t)
	for _, c := range declared {
		if !c.Known() {
			t.Errorf("code %q is declared but has no row in the table", c)
			continue
		}
		if s := c.HTTPStatus(); s < 400 || s > 599 {
			t.Errorf("code %q: HTTP status %d is not an error status", c, s)
		}
		if c.GRPCCode() == codes.OK {
			t.Errorf("code %q maps to gRPC OK", c)
		}
		if c.Title() == "" {
			t.Errorf("code %q has no title", c)
		}
	}
	slices.Sort(declared)
	if got := Codes(); !slices.Equal(got, declared) {
		t.Errorf("Codes() = %v, declared constants = %v", got, declared)
	}
}

func TestEveryGRPCCodeHasAReverseMapping(t *testing.T) {
	// codes.Unauthenticated (16) is the last gRPC code.
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		got := CodeFromGRPC(c)
		if c == codes.OK {
			if got != "" {
				t.Errorf("CodeFromGRPC(OK) = %q, want empty", got)
			}
			continue
		}
		if !got.Known() {
			t.Errorf("CodeFromGRPC(%v) = %q, not a known code", c, got)
		}
	}
	if got := CodeFromGRPC(codes.Code(99)); got != Internal {
		t.Errorf("CodeFromGRPC(99) = %q, want internal", got)
	}
}

func TestEveryCodeRoundTripsThroughGRPCStatus(t *testing.T) {
	for _, c := range Codes() {
		t.Run(string(c), func(t *testing.T) {
			in := &Error{
				Code:       c,
				Message:    "client-safe message",
				Fields:     []FieldViolation{Field("/a/b", "is bad"), Field("", "whole body")},
				RetryAfter: 1500 * time.Millisecond,
				cause:      errors.New("internal cause"),
			}
			st := in.GRPCStatus()
			if st.Code() != c.GRPCCode() {
				t.Fatalf("status code = %v, want %v", st.Code(), c.GRPCCode())
			}
			// Through the wire form: what the peer actually decodes.
			wire := status.FromProto(st.Proto())
			out := FromGRPCStatus(wire)
			if out.Code != c {
				t.Fatalf("code after round trip = %q, want %q", out.Code, c)
			}
			if out.Message != in.Message {
				t.Errorf("message = %q, want %q", out.Message, in.Message)
			}
			if !slices.Equal(out.Fields, in.Fields) {
				t.Errorf("fields = %v, want %v", out.Fields, in.Fields)
			}
			if out.RetryAfter != in.RetryAfter {
				t.Errorf("retry after = %v, want %v", out.RetryAfter, in.RetryAfter)
			}
			if strings.Contains(fmt.Sprint(st.Proto()), "internal cause") {
				t.Errorf("the internal cause leaked into the status: %v", st.Proto())
			}
		})
	}
}

func TestFromGRPCStatusWithoutDetailsFallsBackToTable(t *testing.T) {
	tests := []struct {
		code codes.Code
		want Code
	}{
		{codes.NotFound, NotFound},
		{codes.Unauthenticated, Unauthenticated},
		{codes.Unavailable, Unavailable},
		{codes.Unknown, Internal},
		{codes.DeadlineExceeded, DeadlineExceeded},
	}
	for _, tt := range tests {
		got := FromGRPCStatus(status.New(tt.code, "m"))
		if got.Code != tt.want {
			t.Errorf("%v: code = %q, want %q", tt.code, got.Code, tt.want)
		}
	}
	if got := FromGRPCStatus(status.New(codes.OK, "")); got != nil {
		t.Errorf("OK status decoded to %v, want nil", got)
	}
}

func TestFromGRPCStatusIgnoresForeignAndUnknownReasons(t *testing.T) {
	for _, info := range []*errdetails.ErrorInfo{
		{Reason: string(TokenExpired), Domain: "example.com"},
		{Reason: "some_future_code", Domain: Domain},
	} {
		st, err := status.New(codes.Unauthenticated, "m").WithDetails(info)
		if err != nil {
			t.Fatal(err)
		}
		if got := FromGRPCStatus(st).Code; got != Unauthenticated {
			t.Errorf("ErrorInfo %v: code = %q, want the table's unauthenticated", info, got)
		}
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"nil", nil, ""},
		{"errs error", New(NotFound, "x"), NotFound},
		{"wrapped errs error", fmt.Errorf("loading: %w", New(TokenExpired, "x")), TokenExpired},
		{"plain error", errors.New("boom"), Internal},
		{"deadline", context.DeadlineExceeded, DeadlineExceeded},
		{"wrapped canceled", fmt.Errorf("query: %w", context.Canceled), Canceled},
		{"grpc status without details", status.Error(codes.PermissionDenied, "no"), Forbidden},
		{"grpc status with details", New(TokenInvalid, "bad").GRPCStatus().Err(), TokenInvalid},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.err); got != tt.want {
			t.Errorf("%s: CodeOf = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestGRPCStatusNeverLeaksAPlainErrorsText(t *testing.T) {
	for _, err := range []error{
		errors.New("password=hunter2"),
		Wrap(errors.New("password=hunter2"), Internal, "internal error"),
		fmt.Errorf("ctx: %w", Wrap(errors.New("password=hunter2"), Conflict, "taken")),
	} {
		st := GRPCStatus(err)
		if strings.Contains(fmt.Sprint(st.Proto()), "hunter2") {
			t.Errorf("%v: status leaks the cause: %v", err, st.Proto())
		}
	}
	if st := GRPCStatus(errors.New("x")); st.Code() != codes.Internal {
		t.Errorf("plain error: gRPC code = %v, want Internal", st.Code())
	}
	if st := GRPCStatus(nil); st != nil {
		t.Errorf("GRPCStatus(nil) = %v, want nil", st)
	}
}

func TestGRPCStatusPassesForeignStatusThrough(t *testing.T) {
	foreign, err := status.New(codes.FailedPrecondition, "foreign").WithDetails(&errdetails.PreconditionFailure{})
	if err != nil {
		t.Fatal(err)
	}
	got := GRPCStatus(fmt.Errorf("calling: %w", foreign.Err()))
	if got.Code() != codes.FailedPrecondition || got.Message() != "foreign" || len(got.Details()) != 1 {
		t.Errorf("foreign status changed: %v", got.Proto())
	}
}

func TestFromKeepsErrsErrorAndWrapsTheRest(t *testing.T) {
	orig := New(Conflict, "taken")
	if got := From(fmt.Errorf("x: %w", orig)); got != orig {
		t.Errorf("From did not return the *Error from the chain")
	}
	cause := errors.New("disk on fire")
	got := From(cause)
	if got.Code != Internal || !errors.Is(got, cause) || strings.Contains(got.Message, "disk") {
		t.Errorf("From(plain) = %+v, want internal with the cause only unwrapped", got)
	}
	if From(nil) != nil {
		t.Error("From(nil) != nil")
	}
}

func TestWithCauseAndRetryAfterCopy(t *testing.T) {
	sentinel := New(RateLimited, "slow down")
	withCause := sentinel.WithCause(errors.New("bucket empty"))
	withRetry := sentinel.WithRetryAfter(time.Second)
	if sentinel.Unwrap() != nil || sentinel.RetryAfter != 0 {
		t.Fatalf("sentinel was mutated: %+v", sentinel)
	}
	if withCause.Unwrap() == nil || withRetry.RetryAfter != time.Second {
		t.Errorf("copies lack their additions: %+v %+v", withCause, withRetry)
	}
}

func TestErrorStringIncludesCodeMessageAndCause(t *testing.T) {
	err := Wrap(errors.New("pq: timeout"), Unavailable, "try later")
	if got, want := err.Error(), "unavailable: try later: pq: timeout"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestRequiredNamesEveryEmptyFieldAndPassesFullRequests(t *testing.T) {
	if err := Required("user_id", "u1", "text", "hi"); err != nil {
		t.Fatalf("a full request: %v", err)
	}
	e := From(Required("user_id", "", "text", "hi", "cursor", ""))
	if e.Code != ValidationFailed || len(e.Fields) != 2 || e.Fields[0].Pointer != "/user_id" || e.Fields[1].Pointer != "/cursor" {
		t.Fatalf("got %+v", e)
	}
}
