#!/usr/bin/env bash
# Lab 0 Tutorial 2 with maseir: supervised fine-tuning and LoRA of MiniLM on the
# full IMDb train split (20,000 reviews, 1 epoch each), test accuracy on all
# 5,000 test reviews in both runtimes. About an hour on 2 CPU cores. Run from
# the repo root after `make venv`:  bash examples/lab0/tutorial2.sh
# (outputs, including every command's JSON, go to examples/lab0/out/). A step whose
# output is already there is skipped, so a killed run goes on where it stopped.
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
M=../../.venv/bin/maseir
mkdir -p out

# once OUTPUT COMMAND...: run COMMAND with its stdout into OUTPUT, unless OUTPUT is already there
once() {
  local output=$1; shift
  if [ -s "$output" ]; then echo "($output is there: skipped)"; return; fi
  "$@" > "$output.partial" && mv "$output.partial" "$output"
}
[ -s out/minilm.mir ] || $M export minilm -o out/minilm.mir
for method in sft lora; do
  echo "== $method =="
  once out/$method-apply.json $M apply $method-full.pass out/minilm.mir -o out/minilm-$method.mir --json
  once out/$method-eval-ort.json $M eval out/minilm-$method.mir --dataset imdb --split test --json
  once out/$method-eval-torch.json $M eval out/minilm-$method.mir --dataset imdb --split test --runtime torch --json
done
../../.venv/bin/python - <<'PY'
import json
print("| method | trainable params | train examples/s | train wall s | test accuracy ORT | test accuracy torch | macro-F1 |")
print("|---|---|---|---|---|---|---|")
for method in ("sft", "lora"):
    applied = json.load(open(f"out/{method}-apply.json"))
    report = next(s for s in applied["steps"] if s["step"].startswith("finetune"))["report"]
    ort, torch = (json.load(open(f"out/{method}-eval-{r}.json")) for r in ("ort", "torch"))
    print(f"| {method} | {report['trained_parameters']:,} | {report['examples_per_s']:.1f} | {report['seconds']:.0f} "
          f"| {ort['accuracy']:.4f} | {torch['accuracy']:.4f} | {ort['macro_f1']:.4f} |")
PY
