#!/bin/sh
# Installs what is missing, builds, and starts spimwall on the shipped default config
# (conf/spimwall.conf): loopback ports only, a self-signed certificate made on first run in
# run/, no root needed once the packages are installed.
#
# Behind it, on 127.0.0.1:15200, a private Prosody (state in run/prosody) with three accounts,
# so that a real XMPP client can log in through spimwall right away, and on 127.0.0.1:11873/11874
# the project's MSNP test server (tests/msnp/msnp_server.py: any passport, any password) for
# MSN Messenger clients. spimwall runs in the foreground; Ctrl-C (SIGINT) or a TERM drains it
# and stops both backends too.
#
#   ./scripts/run.sh          start the proxy
#   ./scripts/run.sh scan     replay conf/samples/conversation.jsonl through spimwall-scan
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS" --target spimwall spimwall-scan

mkdir -p run
if [ "${1:-}" = "scan" ]; then
    shift
    [ "$#" -gt 0 ] || set -- conf/samples/conversation.jsonl
    exec ./build/spimwall-scan --rules conf/rules --lists conf/lists --cache run/rules.hsdb "$@"
fi

if [ ! -f run/cert.pem ]; then
    echo "run.sh: creating a self-signed certificate for localhost in run/" >&2
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -keyout run/key.pem -out run/cert.pem 2>/dev/null
fi
./build/spimwall --check-config conf/spimwall.conf

SW_PROSODY_PLAINTEXT=1 ./scripts/prosody-local.sh start run/prosody 15200 \
    alice:alice-secret bob:bob-secret carol:carol-secret
/usr/bin/python3 tests/msnp/msnp_server.py --ns-port 11873 --sb-port 11874 >run/msnp-server.log 2>&1 &
msnp=$!
trap './scripts/prosody-local.sh stop run/prosody; kill "$msnp" 2>/dev/null || true' EXIT INT TERM

cat >&2 <<MSG

spimwall is starting (conf/spimwall.conf). Connect an XMPP client (accept the self-signed
certificate run/cert.pem, or trust it):
  127.0.0.1:15222  XMPP with STARTTLS (the usual c2s port setup), filtered by spimwall
  127.0.0.1:15223  XMPP over direct TLS (XEP-0368), filtered by spimwall
  accounts alice@localhost / alice-secret, bob@localhost / bob-secret,
           carol@localhost / carol-secret
  127.0.0.1:15224  plain TCP relay to the same Prosody (no filtering; for comparisons)
  127.0.0.1:11863  MSN Messenger (MSNP8-18) notification server, filtered by spimwall; its
                   switchboards are reached through 127.0.0.1:11864 (any passport/password)
  metrics: http://127.0.0.1:9464/metrics   health: http://127.0.0.1:9464/healthz
Try "lol! see it! u'll like it http://bit.ly/abc" between two accounts: it is dropped and the
sender gets a policy-violation error; ordinary chat passes byte for byte.
Stop with Ctrl-C.

MSG
# spimwall runs as a child so that a TERM or INT sent to this script (not only Ctrl-C, which
# reaches the whole process group) drains it; the EXIT trap then stops Prosody.
./build/spimwall -c conf/spimwall.conf &
sw=$!
trap 'kill -TERM "$sw" 2>/dev/null' INT TERM
status=0
while kill -0 "$sw" 2>/dev/null; do
    if wait "$sw"; then status=0; else status=$?; fi
done
exit "$status"
