# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
DEMO := runs/demo

.PHONY: test lint demo bench tensorboard clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# For now: make a small offline image set and convert it to TFRecords (training comes with train.py).
demo: $(STAMP)
	$(PY) -m cyclegan_tf.synthetic --out $(DEMO)/images --size 64 --count 64
	$(PY) build_data.py --X_input_dir $(DEMO)/images/trainA --Y_input_dir $(DEMO)/images/trainB \
	    --X_output_file $(DEMO)/X.tfrecords --Y_output_file $(DEMO)/Y.tfrecords

bench: $(STAMP)
	$(PY) bench/input_pipeline.py

tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir checkpoints/

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
