#!/usr/bin/env bash
# Installs the system packages the tests and benchmarks use, only if missing.
set -euo pipefail
need=()
for pair in ip:iproute2 conntrack:conntrack conntrackd:conntrackd keepalived:keepalived nft:nftables \
            ping:iputils-ping socat:socat cc:gcc nfcapd:nfdump ulogd:ulogd2; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || [ -x "/sbin/$bin" ] || need+=("$pkg")
done
# ulogd2's JSON output is a plugin of its own package (bench/flowlog.mjs, the flow log's baseline).
[ -e /usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_JSON.so ] || need+=(ulogd2-json)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: need root to install: ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "install-system-deps: ok"
