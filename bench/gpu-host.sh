#!/usr/bin/env bash
# Packs the GPU benchmarks for a GPU host (no Node, no network) into .gpu-host/:
# ../shared/gpu-host/prepare.sh brings Node, the WebGPU binding and the Vulkan loader and bundles
# bench/kernels.ts as entry.mjs; the other benchmarks are bundled beside it the same way.
# On the host, from the project root:
#   source .gpu-host/env.sh && node .gpu-host/entry.mjs --json --out kernels.json
#   node .gpu-host/paged.mjs --out paged.json
#   node .gpu-host/cpu-gemv.mjs --out cpu-gemv.json   (the WASM module and its worker code are inlined)
set -euo pipefail
cd "$(dirname "$0")/.."
../shared/gpu-host/prepare.sh bench/kernels.ts
for b in paged latency cpu-gemv serve; do
  npm exec --no -- esbuild "bench/$b.ts" --bundle --platform=node --format=esm --target=node22 \
    --external:webgpu --outfile=".gpu-host/$b.mjs" --log-level=warning \
    --banner:js="import{createRequire as __cr}from'module';const require=__cr(import.meta.url);"
done
