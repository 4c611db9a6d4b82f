#!/usr/bin/env bash
# protoc.sh regenerates all Go code under gen/ from proto/**/*.proto.
#
# Usage: scripts/protoc.sh        (from anywhere inside the repository)
#
# Pinned tools, so that running it twice (or on another machine) leaves no
# git diff:
#   - protoc-gen-go and protoc-gen-go-grpc are Go tool dependencies in go.mod
#     (`go get -tool ...@version`), run through `go tool`;
#   - protoc is Debian's protobuf-compiler package, installed here when
#     missing. Its version is written into every generated header, so a
#     different protoc version is refused (PIAZZA_PROTOC_ANY_VERSION=1
#     overrides, at the price of a diff).
#
# Layout: proto/piazza/<name>/v1/<name>.proto with
#   option go_package = "github.com/piazza-social/piazza/gen/piazza/<name>/v1;<name>v1";
# generates gen/piazza/<name>/v1/<name>.pb.go and <name>_grpc.pb.go.
set -euo pipefail

readonly module="github.com/piazza-social/piazza"
readonly want_protoc="libprotoc 3.21.12"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v protoc >/dev/null 2>&1; then
	echo "protoc.sh: protoc not found, installing Debian's protobuf-compiler" >&2
	apt-get update
	apt-get install -y protobuf-compiler
fi
have_protoc="$(protoc --version)"
if [[ "$have_protoc" != "$want_protoc" && "${PIAZZA_PROTOC_ANY_VERSION:-}" != 1 ]]; then
	echo "protoc.sh: found '$have_protoc', want '$want_protoc' (the generated headers record it)" >&2
	exit 1
fi

# protoc runs plugins as executables; these wrappers run the versions pinned
# in go.mod through `go tool`.
plugins="$(mktemp -d)"
trap 'rm -rf "$plugins"' EXIT
for tool in protoc-gen-go protoc-gen-go-grpc; do
	printf '#!/bin/sh\ncd %q && exec go tool %s "$@"\n' "$root" "$tool" >"$plugins/$tool"
	chmod +x "$plugins/$tool"
done
# Build both once up front, so a build error is reported as such and not as
# a cryptic plugin failure.
go tool -n protoc-gen-go >/dev/null
go tool -n protoc-gen-go-grpc >/dev/null

mapfile -t protos < <(find proto -name '*.proto' -type f | LC_ALL=C sort)
if [[ ${#protos[@]} -eq 0 ]]; then
	echo "protoc.sh: no .proto files under proto/" >&2
	exit 1
fi

# Remove previous output first so that a deleted .proto leaves no stale code.
if [[ -d gen ]]; then
	find gen -type f \( -name '*.pb.go' -o -name '*_grpc.pb.go' \) -delete
	find gen -mindepth 1 -type d -empty -delete
fi

protoc \
	--proto_path=proto \
	--plugin=protoc-gen-go="$plugins/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$plugins/protoc-gen-go-grpc" \
	--go_out=. --go_opt=module="$module" \
	--go-grpc_out=. --go-grpc_opt=module="$module" \
	"${protos[@]}"

echo "protoc.sh: generated $(find gen -name '*.pb.go' | wc -l) files from ${#protos[@]} protos"
