#!/usr/bin/env bash
# Runs the Eclipse Paho interoperability suites (MQTT 3.1.1 and 5.0) against Petrel.
# The suites are not part of this project: they are vendored next to it, in
# ../shared/vendor/paho.mqtt.testing, with a runner in ../shared/tools/paho.
# Usage: test/interop/run.sh [PAHO_TOOLS_DIR]   (after npm run build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tools="${1:-$root/../shared/tools/paho}"
[ -x "$tools/run.sh" ] || { echo "no Paho runner at $tools (pass its directory)" >&2; exit 2; }
out="$(mktemp -d)"
# One broker per suite: the 5.0 suite expects a maximum keep alive (Server Keep Alive 60); the 3.1.1 suite
# connects with keep alive 0, which such a broker refuses to 3.1.1 clients (see launch.mjs).
node "$here/launch.mjs" 0 > "$out/port5" &
pid5=$!
node "$here/launch.mjs" 0 --no-max-keep-alive > "$out/port4" &
pid4=$!
trap 'kill $pid5 $pid4 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$out/port5" ] && [ -s "$out/port4" ] && break; sleep 0.1; done
port5="$(head -1 "$out/port5")"
port4="$(head -1 "$out/port4")"
echo "petrel on 127.0.0.1:$port4 (3.1.1 suite) and 127.0.0.1:$port5 (5.0 suite)"
rc=0
PAHO_SUITES=v311 "$tools/run.sh" 127.0.0.1 "$port4" "$out/paho4" || rc=$?
PAHO_SUITES=v5 "$tools/run.sh" 127.0.0.1 "$port5" "$out/paho5" || rc=$?
exit $rc
