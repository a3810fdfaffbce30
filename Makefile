.PHONY: install demo test test-py313 lint typecheck stack-up stack-down slow faults
# Python 3.13 for test-py313: python3.13 on PATH, else pyenv's newest 3.13
PYTHON313 ?= $(shell PYENV_VERSION=$$(pyenv versions --bare 2>/dev/null | grep '^3\.13' | tail -1) \
	pyenv which python3.13 2>/dev/null || command -v python3.13)
install:
	./scripts/install.sh
demo: install
	.venv/bin/tmstream demo
test:
	./scripts/test.sh
test-py313:  # the unit suite under Python 3.13, in its own venv (.venv313)
	@test -n "$(PYTHON313)" || { echo "no python3.13 (PATH or pyenv): set PYTHON313=/path/to/python3.13"; exit 1; }
	test -x .venv313/bin/python || $(PYTHON313) -m venv .venv313
	.venv313/bin/pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" .venv313/bin/pip install -q -e ".[train,dev,report]"
	.venv313/bin/pytest tests/unit -q
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
typecheck:
	.venv/bin/mypy
slow:
	.venv/bin/pytest -m slow
faults:
	.venv/bin/pytest -m fault
stack-up:
	.venv/bin/tmstream stack up
stack-down:
	.venv/bin/tmstream stack down
