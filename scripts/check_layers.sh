#!/usr/bin/env bash
# check_layers.sh -- the layers of tombo, enforced: each source directory may include only the
# project headers of the layers below it (system headers are not checked). `make test` runs it.
#   base     memory, slab, buffers, clock, log: knows no MQTT and nothing above it
#   mqtt     the codec: no I/O, no globals
#   pwhash   password hashes: shared by the broker and tombo-passwd
#   http     HTTP/1.1 request heads and the WebSocket codec: no MQTT, no I/O
#   tls      TLS contexts on OpenSSL: shared by the broker and libtombo (knows no MQTT)
#   broker   the broker (never links libtombo)
#   client   libtombo (with the tls contexts and pwhash's SCRAM messages); tools: the CLIs on libtombo;
#            bench: tombo-bench (a client of its own, with the tls contexts for --tls and the
#            WebSocket codec of http for --ws); client and bench take only base/clock.h and base/hash.h of the base
#            (inline, nothing to link)
# A quoted include that names no directory ("alias.h") is a file of the same directory.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A allowed=(
  [base]="base"
  [mqtt]="mqtt"
  [pwhash]="pwhash base"
  [http]="http"
  [tls]="tls"
  [broker]="broker base mqtt pwhash http tls"
  [client]="base mqtt tombo tls pwhash"
  [tools]="mqtt pwhash tombo"
  [bench]="bench base mqtt http tls"
)
bad=0
for dir in "${!allowed[@]}"; do
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"${line#*:}")
    [[ $inc == */* ]] || continue
    layer=${inc%%/*}
    if [[ " ${allowed[$dir]} " != *" $layer "* ]]; then
      echo "check_layers: $file includes \"$inc\": src/$dir may include only ${allowed[$dir]// /, }" >&2
      bad=1
    fi
  done < <(grep -rn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "src/$dir" --include='*.[ch]' | sed -E 's/^([^:]+):[0-9]+:/\1:/')
done
# One owner per lock: a session's lock is taken only by session.c (others go through its functions:
# session_inspect, session_conn_target, ...), so the lock order lives in one file.
while IFS= read -r line; do
  echo "check_layers: ${line%%:*}: takes a session's lock; only src/broker/session.c may (add a session function)" >&2
  bad=1
done < <(grep -rnE 'pthread_mutex_(lock|trylock)\(&(s|sess|session)->lock\)' src/broker --include='*.c' | grep -v '^src/broker/session\.c:')
if [ $bad -ne 0 ]; then
  exit 1
fi
echo "check_layers: only session.c takes a session's lock; every include goes down the layers (base, mqtt, pwhash, http, tls < broker; tls < client, bench; client, tools, bench on the codec and base/clock.h, base/hash.h)"
