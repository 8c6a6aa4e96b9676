"""Training: the tf.distribute strategy (`strategy`), run folders and checkpoints (`runs`), and the loop
that drives a model's step to the end of its schedule (`loop`)."""
