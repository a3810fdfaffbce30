.PHONY: install demo test lint typecheck stack-up stack-down slow faults
install:
	./scripts/install.sh
demo: install
	.venv/bin/tmstream demo
test:
	./scripts/test.sh
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
