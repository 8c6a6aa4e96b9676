"""CycleGAN (Zhu et al., 2017) in TensorFlow 2 / Keras 3."""
