"""`mini` lm-eval suite: YAMLs + data/*.jsonl; a package only so wheels ship loader.py (lm-eval loads it by path)."""
