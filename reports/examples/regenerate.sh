#!/usr/bin/env bash
# Regenerates the example images the README shows. Run from the project root:
#   bash reports/examples/regenerate.sh
# (~1 minute).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
bin=target/release/servesim
tmp=$(mktemp -d)
$bin run scenarios/azure-conv-sample.yaml --plots --quiet --out "$tmp/run"
$bin sweep scenarios/azure-conv-sample.yaml --loads 0.5,1,1.5,2,2.5,3,3.5,4 --out "$tmp/azure-conv-sample" > /dev/null
$bin search scenarios/search/llama70b-azure.yaml --out "$tmp/llama70b-azure" > /dev/null
cp "$tmp/run/latency_cdf.png" "$tmp/run/throughput_queue.png" "$tmp/run/kv_cache.png" "$tmp/run/power.png" \
   "$tmp/run/ttft_vs_input.png" "$tmp/azure-conv-sample/knee.png" "$tmp/llama70b-azure/pareto_energy.png" "$tmp/llama70b-azure/pareto_cost.png" \
   reports/examples/
rm -rf "$tmp"
echo "updated reports/examples/*.png"
