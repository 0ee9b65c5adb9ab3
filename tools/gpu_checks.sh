#!/usr/bin/env bash
# The checks only a CUDA GPU can make, in one run of under ten minutes, for a session lent a GPU
# machine (its Python already holds PyTorch with CUDA, numpy, scikit-learn, matplotlib, pytest):
#
#   - the CUDA tests (tests/test_cuda.py: graphs, resume, deterministic kernels, …);
#   - what --deterministic costs and whether two same-seed runs agree bit for bit
#     (issue 24; docs/guide/reproduce.md, "paper on a GPU");
#   - each objective's step against beta's (issue 21; docs/guide/objectives.md, "The cost of a step");
#   - packed training against unpacked on the study's grid row, and the study's heart grid swept with
#     --pack 3 against run by run (issue 33; docs/notes/sweep-throughput.md, "Packed training").
#
# From the repository root on that machine:   bash tools/gpu_checks.sh
# Logs go under $OUT (the device tool's folder that comes back), else gpu-checks/. $PYTHON picks
# the interpreter (default python3, which holds PyTorch there; here: PYTHON=.venv/bin/python).
set -u
out=${OUT:-gpu-checks}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

"$python" - <<'EOF' 2>&1 | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda,
      torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA GPU")
EOF
timeout 200 "$python" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/test_cuda.txt"
timeout 240 "$python" benchmarks/deterministic_cost.py --steps 3000 2>&1 | tee "$out/deterministic_cost.txt"
timeout 120 "$python" benchmarks/train_throughput.py --sections objectives --seconds 3 --repeats 2 2>&1 \
    | tee "$out/objectives.txt"
timeout 150 "$python" benchmarks/packed_training.py --device cuda --steps 200 --profile 2>&1 \
    | tee "$out/packed_training.txt"
timeout 200 "$python" benchmarks/packed_sweep.py --device cuda --seeds 1 --pack 3 2>&1 \
    | tee "$out/packed_sweep.txt"
