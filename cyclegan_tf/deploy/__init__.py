"""Deploying a trained generator: the SavedModel export and its ONNX and frozen-graph forms (`savedmodel`),
LiteRT files (`litert`), translating image files with an export (`translate`: inference.py), large images
in tiles (`tiling`), vanhuyz's frozen graphs run and wrapped as a SavedModel (`frozen`) and the browser page
(`web`: `python -m cyclegan_tf.web`)."""
