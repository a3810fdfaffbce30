#!/usr/bin/env bash
# Everything tmstream needs on a fresh Debian machine: system packages, a venv, the package, Kafka's jars.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || packages+=(maven)
command -v redis-server >/dev/null || packages+=(redis-server)
command -v prometheus >/dev/null || packages+=(prometheus)
command -v promtool >/dev/null || packages+=(prometheus)
command -v prometheus-alertmanager >/dev/null || packages+=(prometheus-alertmanager)
command -v kcat >/dev/null || packages+=(kcat)
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing system packages: ${packages[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # Debian starts packaged services where an init system exists; tmstream runs its own.
  for svc in redis-server prometheus prometheus-alertmanager; do
    $sudo_cmd service "$svc" stop >/dev/null 2>&1 || true
  done
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.tmstream-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  # Editable: the package data (config/, schemas/, deploy/) is read in place through setuptools' import
  # finder, whose one informational "Editable installation" note is filtered out of the output.
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/pip install -q -e ".[train,dev,report,confluent]"
  touch "$stamp"
fi
# The engine's numba kernels compiled into their cache now (≈40 s once; a second run loads them),
# not by a worker's first batch.
.venv/bin/python -m model_store.warm
.venv/bin/tmstream stack install

# toxiproxy, for the fault suite's network partitions (a TCP proxy whose toxics black-hole traffic),
# built once from the Go module proxy; nothing at runtime uses it.
toxiproxy_version=v2.5.0
toxiproxy_dir=${XDG_CACHE_HOME:-$HOME/.cache}/tmstream/toxiproxy/$toxiproxy_version
go=$(command -v go || echo /usr/local/go/bin/go)
if [ ! -x "$toxiproxy_dir/server" ] && [ -x "$go" ]; then
  echo "building toxiproxy $toxiproxy_version"
  GOBIN="$toxiproxy_dir" "$go" install "github.com/Shopify/toxiproxy/v2/cmd/server@$toxiproxy_version"
elif [ ! -x "$toxiproxy_dir/server" ]; then
  echo "install.sh: no Go toolchain, so no toxiproxy: the network-partition fault test will skip" >&2
fi
