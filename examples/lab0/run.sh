#!/usr/bin/env bash
# Lab 0 with maseir: Tutorial 1 (count and remove dropout) on a bert-tiny-shaped
# BertForSequenceClassification and on MiniLM, and Tutorial 2's question (what
# the graph inputs change in the topology). Run from the repo root after
# `make venv`:  bash examples/lab0/run.sh   (outputs go to examples/lab0/out/)
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1
M=../../.venv/bin/maseir
mkdir -p out

echo "== Tutorial 1 on bert-tiny (random weights, seeded; the shape of prajjwal1/bert-tiny) =="
$M export bert-tiny --random-init -o out/bert-tiny.mir
$M apply lab0.pass out/bert-tiny.mir -o out/bert-tiny-nodrop.mir
$M diff out/bert-tiny.mir out/bert-tiny-nodrop.mir || true

echo; echo "== Tutorial 1 on MiniLM (all-MiniLM-L6-v2, pretrained) =="
$M export minilm -o out/minilm.mir
$M apply lab0.pass out/minilm.mir -o out/minilm-nodrop.mir
$M apply -e report out/minilm-nodrop.mir

echo; echo "== Tutorial 2: which inputs the graph takes =="
$M export bert-tiny --random-init --inputs input_ids -o out/ids.mir
$M export bert-tiny --random-init --inputs input_ids,attention_mask -o out/ids-mask.mir
$M export bert-tiny --random-init --inputs input_ids,attention_mask,labels -o out/ids-mask-labels.mir
for f in ids ids-mask ids-mask-labels; do $M apply -e count out/$f.mir; done
echo "-- input_ids -> input_ids,attention_mask"
$M diff out/ids.mir out/ids-mask.mir || true
echo "-- input_ids,attention_mask -> input_ids,attention_mask,labels"
$M diff out/ids-mask.mir out/ids-mask-labels.mir || true
