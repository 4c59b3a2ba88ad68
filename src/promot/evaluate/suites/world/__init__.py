"""`world` lm-eval suite, written by `promot world export`; a package only so wheels ship loader.py."""
