#!/bin/sh
# Installs what the end-to-end tests run against oxetcd when it is missing: the reference
# etcd 3.4.23 (Debian's etcd-server and etcd-client; the conformance and linearizability
# tests run against it) and the Python client libraries python3-etcd3 (v3) and
# python3-etcd (v2) that the client-library tests drive, and the Protocol Buffers compiler
# (Debian's protobuf-compiler, with the well-known types of libprotobuf-dev) that the
# build script of the Rust etcd-client crate runs (impl/client-tests; only test builds of
# the workspace need it, never `cargo build --bin oxetcd`). A PROTOC set in the
# environment is used as it is.
set -eu
# The Debian packages install for the system interpreter, not a python3 earlier on PATH.
PYTHON=/usr/bin/python3
PACKAGES=""
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
    PACKAGES="etcd-server etcd-client"
fi
if ! $PYTHON -c 'import etcd3' >/dev/null 2>&1; then
    PACKAGES="$PACKAGES python3-etcd3"
fi
if ! $PYTHON -c 'import etcd' >/dev/null 2>&1; then
    PACKAGES="$PACKAGES python3-etcd"
fi
if [ -z "${PROTOC:-}" ] && { ! command -v protoc >/dev/null 2>&1 \
    || [ ! -f /usr/include/google/protobuf/descriptor.proto ]; }; then
    PACKAGES="$PACKAGES protobuf-compiler libprotobuf-dev"
fi
if [ -z "$PACKAGES" ]; then
    exit 0
fi
echo "installing:$PACKAGES ..." >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >/dev/null
# Debian enables and starts an etcd service on install where systemd runs; the tests
# start their own servers on free ports, so a stray service is harmless but unwanted.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl stop etcd >/dev/null 2>&1 || true
fi
etcd --version | head -n 1 >&2
