# Two commands do everything:  make book   and   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install data book check-book chromium check-chapters test test-unit test-notebooks clean gpu-wheels gpu-suite gpu-dry-run

install: $(STAMP) data

# Fashion-MNIST for the SAMP, Manifold IG and augmentation chapters: Debian's package (root, apt-get).
FASHION := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
data:
	@test -f $(FASHION) || { command -v apt-get >/dev/null && \
	  { apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null; }; }; } || \
	  echo "WARNING: could not install Debian's dataset-fashion-mnist; set RIEMANNKIT_FASHION_MNIST to a folder of its IDX files"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (riemannkit)"
	touch $(STAMP)

# MathJax 3 from npm (Apache-2.0), copied into the book's static files so equations typeset offline.
MATHJAX := book/static/mathjax/tex-mml-chtml.js
$(MATHJAX):
	command -v npm >/dev/null || { apt-get install -y -qq npm >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq npm >/dev/null; }; }
	npm install --prefix _build/npm --no-audit --no-fund --no-save mathjax@3.2.2
	rm -rf book/static/mathjax && cp -r _build/npm/node_modules/mathjax/es5 book/static/mathjax

# Executes every notebook with its quick offline defaults, then builds the HTML book (warnings are errors).
book: install $(MATHJAX)
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	@echo "Book: $(CURDIR)/_build/html/index.html"

# Debian's Chromium for the browser test of the built book (root, apt-get), as for dataset-fashion-mnist.
chromium:
	@command -v chromium >/dev/null || { apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null; }; }

# Loads every page of _build/html in headless Chromium with no network: tables, math, images, links, JS errors.
check-book: install chromium
	$(BIN)/python tools/check_book.py _build/html --screenshots _build/screenshots --phone

# Each notebooks/<name>.ipynb must be what its source chapters/<name>.md gives.
check-chapters: install
	$(BIN)/python tools/sync_chapters.py --check

test: check-chapters test-unit test-notebooks

test-unit: install
	$(BIN)/python -m pytest tests -q

test-notebooks: install
	$(BIN)/python -m pytest --nbval-lax notebooks -q -p no:cacheprovider

clean:
	rm -rf _build

# The GPU job (README "GPU run"): wheels the GPU machine lacks into .whl/ (needs PyPI) and the commit stamp;
# gpu-suite runs the suite where a GPU is (on the lent machine: python3 benchmarks/gpu_suite.py --out $$OUT).
gpu-wheels:
	PYTHON=$(BIN)/python tools/fetch_gpu_wheels.sh
gpu-suite: gpu-wheels
	$(BIN)/python benchmarks/gpu_suite.py --out $${OUT:-_build/gpu_suite}
gpu-dry-run:
	$(BIN)/python benchmarks/gpu_suite.py --dry-run --out _build/gpu_dry_run
