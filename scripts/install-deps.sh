#!/bin/sh
# Installs the Debian 12 packages spimwall needs to build, test and run, if any are missing.
# Idempotent and quiet when everything is present. Needs root (or sudo) only when it installs.
set -eu

PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
libhyperscan-dev libev-dev libssl-dev libcmocka-dev libpsl-dev libconfig-dev libexpat1-dev publicsuffix
openssl ca-certificates python3 prosody python3-slixmpp redis-server haproxy procps"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# Debian's prosody and redis-server packages start system services on install; spimwall's
# tests start their own on loopback, so keep the packaged ones from starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
