#!/usr/bin/env bash
# Lab 1 with maseir: accuracy against bits (PTQ and QAT) and against sparsity (pruning, with and
# without retraining) for the MiniLM fine-tuned on IMDb in Lab 0 Tutorial 2
# (examples/lab0/out/minilm-sft.mir: run examples/lab0/tutorial2.sh first). Roughly an hour
# on 2 CPU cores; each sweep resumes where it stopped (--resume). Run from the repo root after
# `make venv`:  bash examples/lab1/run.sh   (tables and plots go to examples/lab1/out/).
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
M=../../.venv/bin/maseir
PY=../../.venv/bin/python
MODEL=${LAB1_MODEL:-../lab0/out/minilm-sft.mir}
OUT=${LAB1_OUT:-out}
mkdir -p $OUT
test -f $MODEL || { echo "run examples/lab0/tutorial2.sh first (it makes $MODEL)"; exit 1; }
BITS=4,6,8,12,16
SPARSITY=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9
# What the README's numbers were measured with, chosen to fit about an hour of 2 CPU cores:
# the first 1,000 test reviews (LAB1_QUANT_LIMIT=5000 and LAB1_PRUNE_LIMIT=5000 for all of them);
# QAT at 4 and 8 bits; retraining at three of the nine sparsities.
QAT_BITS=${LAB1_QAT_BITS:-4,8}
RETRAIN_SPARSITY=${LAB1_RETRAIN_SPARSITY:-0.5,0.7,0.9}
QUANT_EVAL="--dataset imdb --split test --limit ${LAB1_QUANT_LIMIT:-1000}"
PRUNE_EVAL="--dataset imdb --split test --limit ${LAB1_PRUNE_LIMIT:-1000}"
# (LAB1_MODEL, LAB1_OUT, the limits above and LAB1_SHORT=1, which calibrates on 16 reviews and trains
#  on 32, make a quick trial run of the whole script)
SHORT_CAL=${LAB1_SHORT:+--vary calibrate.samples=16}
SHORT_TRAIN=${LAB1_SHORT:+--vary finetune.limit=32}

echo "== PTQ, frac auto =="
$M sweep ptq.pass $MODEL $SHORT_CAL --vary quantize.bits=$BITS $QUANT_EVAL -o $OUT/ptq-auto.csv --resume --quiet
echo "== PTQ, frac = bits / 2 =="
for bits in 4 6 8 12 16; do
  $M sweep ptq.pass $MODEL $SHORT_CAL --vary quantize.bits=$bits --vary quantize.frac=$((bits / 2)) $QUANT_EVAL \
    -o $OUT/ptq-half-$bits.csv --resume --quiet
done
echo "== QAT (1 epoch on 2,000 training reviews) =="
$M sweep qat.pass $MODEL $SHORT_CAL --vary quantize.bits=$QAT_BITS $SHORT_TRAIN $QUANT_EVAL -o $OUT/qat.csv --resume --quiet
echo "== pruning, without and with retraining =="
$M sweep prune.pass $MODEL --vary prune.method=random,l1 --vary prune.sparsity=$SPARSITY $PRUNE_EVAL \
  -o $OUT/prune.csv --resume --quiet
$M sweep prune-retrain.pass $MODEL --vary prune.method=random,l1 --vary prune.sparsity=$RETRAIN_SPARSITY $SHORT_TRAIN \
  $PRUNE_EVAL \
  -o $OUT/prune-retrain.csv --resume --quiet
echo "== structured: feed-forward neurons, compacted =="
$M sweep ffn.pass $MODEL --vary prune.sparsity=0.25,0.5 $PRUNE_EVAL -o $OUT/ffn.csv --resume --quiet --keep $OUT/ffn
for f in $OUT/ffn/*.mir; do $M bench $f --runtime onnxruntime --batch 1 --seq-len 128 --json > ${f%.mir}-bench.json; done
$PY study.py $OUT
