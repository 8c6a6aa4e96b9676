"""Evaluation: the scores (`metrics`), the FID network (`inception`), scoring folders and exports
(`score`: `python -m cyclegan_tf.evaluate`), evaluation during training (`during_training`) and the run
report (`report`: `python -m cyclegan_tf.report`)."""
