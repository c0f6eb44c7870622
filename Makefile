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

.PHONY: test demo venv clean graphviz

venv: $(STAMP) graphviz

# Graphviz's dot renders `maseir draw` pictures (.svg, .png, .pdf) and runs the render tests.
# Installed only where it can be (root with apt-get, as in CI); never fails the build: without
# it `maseir draw` writes the .dot and those tests are skipped, saying why.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing graphviz (for maseir draw) with apt-get"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends graphviz; } >/dev/null 2>&1 \
	      || echo "could not install graphviz: maseir draw writes .dot files only; its render tests are skipped"; \
	  else \
	    echo "graphviz (dot) is not installed and needs root with apt-get here: maseir draw writes .dot" \
	         "files only; its render tests are skipped (install the graphviz package to render)"; \
	  fi; }

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: $(STAMP) graphviz
	$(BIN)/python -m pytest -q

demo: $(STAMP) graphviz
	$(BIN)/python examples/demo/run.py --out demo-out

clean:
	rm -rf $(VENV) demo-out
