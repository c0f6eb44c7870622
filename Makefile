# make test: set up .venv (if needed) and run every test.
# make demo: set up .venv (if needed) and run the main job on the embedded default:
#            export MiniLM, show and check it, run the Lab 0 pipeline, diff the result,
#            lower it to ONNX and time it in ONNX Runtime and PyTorch.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: test demo venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	mkdir -p demo-out
	$(BIN)/maseir export minilm -o demo-out/minilm.mir
	@echo "--- maseir show (metadata, inputs, layer 0, outputs; the full text has one line per node) ---"
	$(BIN)/maseir show demo-out/minilm.mir | grep -E '^(metadata|dim|input|node bert\.encoder\.layer\.0\.|output)'
	$(BIN)/maseir check demo-out/minilm.mir
	$(BIN)/maseir apply examples/lab0/lab0.pass demo-out/minilm.mir -o demo-out/minilm-nodrop.mir
	$(BIN)/maseir diff demo-out/minilm.mir demo-out/minilm-nodrop.mir | tail -1
	$(BIN)/maseir apply -e report demo-out/minilm-nodrop.mir
	$(BIN)/maseir lower demo-out/minilm-nodrop.mir --to onnx -o demo-out/minilm-nodrop.onnx
	$(BIN)/maseir bench demo-out/minilm-nodrop.mir --runtime onnxruntime --batch 1 --seq-len 128
	$(BIN)/maseir bench demo-out/minilm-nodrop.mir --runtime torch --batch 1 --seq-len 128

clean:
	rm -rf $(VENV) demo-out
