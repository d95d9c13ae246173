"""Keras models and their training/device helpers (the only package that imports a DL framework)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines on every import
