"""Inference: checkpoint -> callable on PIL images (``Translator``), image I/O, padding."""
