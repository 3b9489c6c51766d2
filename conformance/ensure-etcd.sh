#!/bin/sh
# Installs the reference etcd 3.4.23 (Debian's etcd-server and etcd-client) when it is
# missing. The conformance and linearizability tests run against it.
set -eu
if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then
    exit 0
fi
echo "installing the reference etcd (Debian etcd-server, etcd-client)..." >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
# Debian enables and starts an etcd service on install where systemd runs; the tests
# start their own servers on free ports, so a stray service is harmless but unwanted.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl stop etcd >/dev/null 2>&1 || true
fi
etcd --version | head -n 1 >&2
