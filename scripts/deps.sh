#!/usr/bin/env bash
# deps.sh -- install the Debian packages tombo needs, only those missing.
#   scripts/deps.sh build   what `make run` needs (compiler, cmake, OpenSSL, SQLite, the Mosquitto plugin headers, nats.c,
#                           libdlt for log_dest dlt)
#   scripts/deps.sh test    plus the peers the tests talk to (mosquitto, nats-server, paho-mqtt, pytest, clang, node),
#                           prometheus_client's parser and Chromium (the HTTP endpoint's and dashboard's tests)
#                           and the openssl CLI (test_tls.py makes its certificates with it)
set -euo pipefail
want=(cmake make gcc pkg-config libssl-dev libsqlite3-dev mosquitto-dev libnats-dev libdlt-dev)
if [ "${1:-build}" = test ]; then
  want+=(clang libclang-rt-14-dev mosquitto mosquitto-clients nats-server openssl python3-paho-mqtt python3-pytest)
  # tests/install reads the installed man pages (man -l; groff-base comes with it).
  want+=(man-db)
  # tests/broker/test_http.py parses /metrics with prometheus_client's parser; test_web.py loads the
  # dashboard in headless Chromium.
  want+=(python3-prometheus-client chromium)
  # tests/broker/test_log_dlt.py reads `log_dest dlt` lines back through a DLT daemon of its own.
  want+=(dlt-daemon dlt-tools)
  # Node.js may come from another packaging that bundles npm (Debian's npm would conflict with it).
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's mosquitto package starts a system broker on 1883; the tests start their own on free
  # ports, and `make run` wants 1883 for tombo.
  if printf '%s\n' "${missing[@]}" | grep -qx mosquitto && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
  # Debian's dlt-daemon starts a system daemon on /tmp/dlt and port 3490; the tests start their own.
  if printf '%s\n' "${missing[@]}" | grep -qx dlt-daemon && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now dlt-daemon >/dev/null 2>&1 || true
  fi
fi
if [ "${1:-build}" = test ] && [ -f tests/package.json ] && [ ! -d tests/node_modules/mqtt ]; then
  echo "deps: npm install (tests/)"
  (cd tests && npm install --no-audit --no-fund --silent)
fi
