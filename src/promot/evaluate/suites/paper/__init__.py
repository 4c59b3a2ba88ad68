"""`paper` lm-eval suite: YAMLs; a package only so wheels ship utils.py (lm-eval loads it by path)."""
