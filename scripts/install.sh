#!/usr/bin/env bash
# One-shot set-up: torch's CPU wheel first, then everything else under constraints.txt, so pip never
# swaps in a multi-GB CUDA torch. Idempotent: re-running installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PYTHON:-python3} -m pip"
$PIP install -q torch==2.13.0
$PIP install -q -c constraints.txt -e ".[dev]"
