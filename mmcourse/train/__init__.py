"""Training: every trainer of the command line and the notebooks, with callbacks,
regularisation and tf.distribute (notebooks 04, 05, 07, 08, 11, 12)."""
