# The two commands a fresh machine needs: `make run` and `make test`.
# Both create .venv when it is missing and install once; a second call reuses the install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.quantviz-installed
SAMPLE ?= sample:digits_cnn
PORT ?= 8501

.PHONY: install kernels run test test-all test-fast bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml scripts/system_deps.sh | $(PY)
	bash scripts/system_deps.sh
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,explorer,arm,openvino,coreml]'
	touch $(STAMP)

install: $(STAMP)

# The C++ kernel libraries (kernels/), built once and cached under kernels/build by source hash and versions.
kernels: install
	$(PY) -c 'from quantviz_kernels.build import main; main()'

run: kernels
	QUANTVIZ_DEFAULT_MODEL=$(SAMPLE) $(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

test: kernels
	$(PY) -m pytest -q -m "not slow" --durations=40

test-all: kernels
	$(PY) -m pytest -q

test-fast: kernels
	$(PY) -m pytest -q -m "not e2e"

bench: kernels
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache tests/artifacts kernels/build
