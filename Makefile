# The two commands (README): `make demo` runs the main job on the built-in default; `make test` runs the tests.
# Both set up .venv first (scripts/setup.sh: idempotent, seconds on re-run).
.PHONY: demo test setup lint clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@bash scripts/test.sh

lint: setup
	@. .venv/env.sh && ruff check .

clean:
	rm -rf out ros2_ws/build ros2_ws/install ros2_ws/log .ros
