#!/usr/bin/env bash
# The GPU probe (benchmarks/gpu_probe.py) on a machine whose Python has PyTorch, transformers and timm but not the
# rest of mmlabel's requirements and no package index (the project's lent GPU machine):
#
#   benchmarks/gpu_probe.sh wheels      # here, with PyPI: the missing packages as Python 3.12 x86-64 wheels, in .whl/
#   benchmarks/gpu_probe.sh run [OUT]   # there, from the repository root, with .whl/ beside it: install them into
#                                       # /tmp/site and run the probe once, as one process, writing into OUT ($OUT)
#
# The wheels: POT and GeomLoss (the alignment losses), pydantic with its core (recipes), tomli-w; versions pinned to
# what the development environment was tested with. .whl/ is ignored by git (add `/.whl/` to .git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(pot==0.9.7.post1 geomloss==0.3.1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
        typing-inspection==0.4.5 tomli-w==1.2.0)

case "${1:-}" in
wheels)
    mkdir -p .whl
    for wheel in "${WHEELS[@]}"; do
        python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -q -d .whl "$wheel"
    done
    ls .whl
    ;;
run)
    out=${2:-${OUT:-gpu-probe}}
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
    python3 benchmarks/gpu_probe.py --out "$out"
    ;;
*)
    echo "usage: $0 wheels | run [OUT]" >&2
    exit 2
    ;;
esac
