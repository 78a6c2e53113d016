#!/usr/bin/env bash
# grpcurl, the gRPC command-line client, built from the Go module proxy into
# $VAHINI_INFRA_HOME/bin: the tests call the server with it to prove that
# reflection works for real clients.  infra/grpcurl.sh install|path
SERVICE=grpcurl
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
VERSION=v1.9.3
BIN_DIR="$VAHINI_INFRA_HOME/bin"

do_install() {
  [[ -x "$BIN_DIR/grpcurl" && "$(cat "$BIN_DIR/.grpcurl-version" 2>/dev/null)" == "$VERSION" ]] && return 0
  command -v go >/dev/null || apt_install golang-go
  log "building grpcurl $VERSION with go install (~40 s)"
  mkdir -p "$BIN_DIR"
  retry 3 env GOBIN="$BIN_DIR" GOFLAGS=-mod=mod go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$VERSION" >&2
  echo "$VERSION" >"$BIN_DIR/.grpcurl-version"
}

case "${1:-}" in
  install) do_install ;;
  path) echo "$BIN_DIR/grpcurl" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
