"""CycleGAN (Zhu et al., 2017) and its family in TensorFlow 2 / Keras 3.

Folders follow the workflow: data/ (image files → TFRecords → the input pipeline), networks/, models/,
training/, evaluation/, deploy/; the vocabulary every layer shares (errors, atomic, options, console,
config) and the front ends (api, demo) are at the top. docs/architecture.md is the tour.
"""
from cyclegan_tf import compat

compat.install()
