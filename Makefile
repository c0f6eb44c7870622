# make test: set up .venv (if needed) and run every test.
# make demo: set up .venv (if needed) and run the main job on the embedded default
#            (examples/demo/run.py): export MiniLM, count and remove its dropout, fine-tune it
#            on 2,000 IMDb reviews in full and with LoRA r=8, evaluate both on 1,000 test
#            reviews with ONNX Runtime and PyTorch, quantize the fine-tuned model to 8-bit fixed
#            point (PTQ), and print one results table.
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
	$(BIN)/python examples/demo/run.py --out demo-out

clean:
	rm -rf $(VENV) demo-out
