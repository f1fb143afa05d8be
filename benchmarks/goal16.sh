#!/usr/bin/env bash
# Issue 16 goal runs (BENCHMARKS.md "Issue 16 goals"): ours and the stronger peers, each on its
# default grid, the dp grid and the auto grid (pilot noise stream 'pilot', disjoint from the
# benchmark's), NFE 2..32, pathwise RMSE to the converged reference and classifier-FID at NFE 4.
#   bash benchmarks/goal16.sh mnist-gmm   # ~40 min on 1 thread of this CPU
#   bash benchmarks/goal16.sh mnist       # ~60 min (the U-Net; its reference alone ~50 min if not cached)
# (1 thread each: OMP_NUM_THREADS=1; PATH must find the lazysi of the install)
set -euo pipefail
model=${1:?model: mnist-gmm or mnist}
ours="lazy-cov-pc lazy-cov-pc@auto lazy-cov-pcd lazy-cov-pcd@auto lazy-cov-pc4@auto lazy-cov-pc@dp lazy-cov-pc@ctrl lazy-cov-pc@gauss"
# the U-Net run (CPU time) keeps the five peers that were strongest in every earlier run (stop 12's
# U-Net table, stop 19's mnist-gmm table); unipc3-bh1, deis3 and dpm++2m were behind them everywhere
if [ "$model" = mnist ]; then list="unipc unipc3-bh2 dpm++3m ipndm fm-midpoint"; ours="${ours% lazy-cov-pc@gauss}";
else list="unipc unipc3-bh1 unipc3-bh2 dpm++3m deis3 ipndm dpm++2m fm-midpoint"; fi
peers=""
for p in $list; do peers="$peers $p $p@dp $p@auto"; done
fid=""
for s in lazy-cov-pc lazy-cov-pc@auto lazy-cov-pcd lazy-cov-pcd@auto $peers; do fid="$fid $s:4"; done
if [ "$model" = mnist ]; then n=128; nfid=1000; out=benchmarks/results/goal_mnist; else n=256; nfid=2000; out=benchmarks/results/goal_gmm; fi
exec lazysi bench --models "$model" --nfe 2 3 4 6 8 12 16 32 --samplers $ours $peers euler \
  --n "$n" --n-fid "$nfid" --fid --fid-extra $fid euler:16 --out "$out"
