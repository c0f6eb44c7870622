#!/usr/bin/env bash
# Lab 1 with maseir: accuracy against bits (PTQ and QAT) and against sparsity (pruning, with and
# without retraining) for the MiniLM fine-tuned on IMDb in Lab 0 Tutorial 2
# (examples/lab0/out/minilm-sft.mir: run examples/lab0/tutorial2.sh first). Several hours on
# 2 CPU cores; each sweep resumes where it stopped (--resume). Run from the repo root after
# `make venv`:  bash examples/lab1/run.sh   (tables and plots go to examples/lab1/out/).
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
M=../../.venv/bin/maseir
PY=../../.venv/bin/python
MODEL=../lab0/out/minilm-sft.mir
mkdir -p out
test -f $MODEL || { echo "run examples/lab0/tutorial2.sh first (it makes $MODEL)"; exit 1; }
BITS=4,6,8,12,16
SPARSITY=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9
QUANT_EVAL="--dataset imdb --split test"            # all 5,000 test reviews
PRUNE_EVAL="--dataset imdb --split test --limit 2000"

echo "== PTQ, frac auto =="
$M sweep ptq.pass $MODEL --vary quantize.bits=$BITS $QUANT_EVAL -o out/ptq-auto.csv --resume --quiet
echo "== PTQ, frac = bits / 2 =="
for bits in 4 6 8 12 16; do
  $M sweep ptq.pass $MODEL --vary quantize.bits=$bits --vary quantize.frac=$((bits / 2)) $QUANT_EVAL \
    -o out/ptq-half-$bits.csv --resume --quiet
done
echo "== QAT (1 epoch on 2,000 training reviews) =="
$M sweep qat.pass $MODEL --vary quantize.bits=$BITS $QUANT_EVAL -o out/qat.csv --resume --quiet
echo "== pruning, without and with retraining =="
$M sweep prune.pass $MODEL --vary prune.method=random,l1 --vary prune.sparsity=$SPARSITY $PRUNE_EVAL \
  -o out/prune.csv --resume --quiet
$M sweep prune-retrain.pass $MODEL --vary prune.method=random,l1 --vary prune.sparsity=$SPARSITY $PRUNE_EVAL \
  -o out/prune-retrain.csv --resume --quiet
echo "== structured: feed-forward neurons, compacted =="
$M sweep ffn.pass $MODEL --vary prune.sparsity=0.25,0.5 $PRUNE_EVAL -o out/ffn.csv --resume --quiet --keep out/ffn
for f in out/ffn/*.mir; do $M bench $f --runtime onnxruntime --batch 1 --seq-len 128 --json > ${f%.mir}-bench.json; done
$PY study.py out
