#!/bin/sh
# Installs what is missing, builds, and runs spimwall's main job.
#
# Today that is the offline classifier: spimwall-scan replays the sample conversation in
# conf/samples/conversation.jsonl through the default rules and the reputation cache and prints
# one verdict per message. Extra arguments go to spimwall-scan (e.g. a JSON-lines file of yours).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS" --target spimwall-scan

mkdir -p run
if [ "$#" -eq 0 ]; then
    set -- conf/samples/conversation.jsonl
fi
echo "== spimwall-scan: rules conf/rules, lists conf/lists, input $* ==" >&2
exec ./build/spimwall-scan --rules conf/rules --lists conf/lists --cache run/rules.hsdb "$@"
