// Package rpctestv1 is the generated code of proto/piazza/rpctest/v1, a
// TEST-ONLY gRPC service with which platform/rpc and platform/web tests
// exercise interceptors, error mapping and tracing over a real connection.
// Nothing in production serves or calls it. The .pb.go files are generated
// by scripts/protoc.sh; this file is not.
package rpctestv1
