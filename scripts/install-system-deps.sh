#!/usr/bin/env bash
# Debian 12 packages the gateway needs (only where no prebuilt mediasoup worker can be
# downloaded: the libraries and tools to build it from the npm tarball), and with --test the
# real peers the tests drive (SIPp, baresip, Chromium, sox, Redis, docker-compose); with
# --bench those and what the benches compare against and count with (Kamailio, rtpengine,
# iptables, tcpdump, tshark, a C compiler); with --runtime only the libraries a worker built
# here runs with (a slim image's final stage).
# Idempotent; runs apt-get only for what is missing.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,8s/^# \{0,1\}//p' "$0"
  echo "usage: $0 [--test | --bench | --runtime]"
  exit 0
fi
BUILD=(meson ninja-build pkg-config g++ make python3 libssl-dev libuv1-dev libusrsctp-dev
       libabsl-dev libflatbuffers-dev flatbuffers-compiler debian-archive-keyring)
TEST=(sip-tester baresip baresip-core sox libsox-fmt-all chromium redis-server docker-compose openssl procps iproute2)
BENCH=(kamailio kamailio-websocket-modules kamailio-tls-modules kamailio-extra-modules kamailio-utils-modules
       rtpengine-daemon rtpengine-utils iptables tcpdump tshark gcc linux-perf)
RUNTIME=(libssl3 libuv1 libusrsctp2 libabsl20220623)
want=("${BUILD[@]}")
[[ ${1:-} == --test ]] && want+=("${TEST[@]}")
[[ ${1:-} == --bench ]] && want+=("${TEST[@]}" "${BENCH[@]}")
[[ ${1:-} == --runtime ]] && want=("${RUNTIME[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system packages: all present"
  exit 0
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
echo "system packages: installing ${missing[*]}"
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
