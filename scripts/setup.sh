#!/usr/bin/env bash
# Everything a fresh Debian machine lacks to run Doppler: Chromium (its SwiftShader Vulkan driver
# gives WebGPU without a GPU, and the browser tests drive it), the Vulkan loader, b3sum (an
# independent BLAKE3 the tests check shard names against), and the npm packages, which bring
# Node 24 (the machine's Node may be older than libp2p 3 needs).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v b3sum >/dev/null || missing+=(b3sum)
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 ' || missing+=(libvulkan1)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
