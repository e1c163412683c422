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
node "$here/launch.mjs" 0 > "$out/port" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$out/port" ] && break; sleep 0.1; done
port="$(head -1 "$out/port")"
echo "petrel on 127.0.0.1:$port"
"$tools/run.sh" 127.0.0.1 "$port" "$out/paho"
