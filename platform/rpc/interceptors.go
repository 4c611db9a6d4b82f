package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"

	"github.com/piazza-social/piazza/platform/errs"
)

// The server chain, outermost first: mapErrors turns whatever comes back
// into a status with details; log sees the raw error (with its internal
// cause, which only the log gets); recover turns a panic into an internal
// error.

func unaryMapErrors() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return nil, errs.GRPCStatus(err).Err()
		}
		return resp, nil
	}
}

func streamMapErrors() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := handler(srv, ss); err != nil {
			return errs.GRPCStatus(err).Err()
		}
		return nil
	}
}

func unaryLog(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logCall(ctx, log, "grpc request", info.FullMethod, start, err)
		return resp, err
	}
}

func streamLog(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logCall(ss.Context(), log, "grpc stream", info.FullMethod, start, err)
		return err
	}
}

// logCall logs one finished call: method, code ("ok" or the errs code),
// duration_ms and, for failures, the error with its internal cause.
// Successful calls log at Debug, since the HTTP edge already logs every
// request at Info and internal hops multiply that volume; traces show
// them. Client errors log at Info, unavailability and timeouts at Warn,
// internal errors at Error. The project's slog handler adds the trace id.
func logCall(ctx context.Context, log *slog.Logger, msg, method string, start time.Time, err error) {
	level := slog.LevelDebug
	code := errs.CodeOf(err)
	switch code {
	case "":
	case errs.Internal:
		level = slog.LevelError
	case errs.Unavailable, errs.DeadlineExceeded, errs.Canceled:
		level = slog.LevelWarn
	default:
		level = slog.LevelInfo
	}
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", codeString(code)),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	log.LogAttrs(ctx, level, msg, attrs...)
}

func codeString(c errs.Code) string {
	if c == "" {
		return "ok"
	}
	return string(c)
}

func unaryRecover(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if v := recover(); v != nil {
				err = recovered(ctx, log, info.FullMethod, v)
			}
		}()
		return handler(ctx, req)
	}
}

func streamRecover(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = recovered(ss.Context(), log, info.FullMethod, v)
			}
		}()
		return handler(srv, ss)
	}
}

// recovered logs a handler panic with its stack and returns the internal
// error the caller gets instead (the panic value stays in the cause, out of
// the status).
func recovered(ctx context.Context, log *slog.Logger, method string, v any) error {
	log.LogAttrs(ctx, slog.LevelError, "panic in grpc handler",
		slog.String("method", method),
		slog.String("panic", fmt.Sprint(v)),
		slog.String("stack", string(debug.Stack())),
	)
	return errs.Wrap(fmt.Errorf("panic: %v", v), errs.Internal, "internal error")
}
