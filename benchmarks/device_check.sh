#!/usr/bin/env bash
# The GPU check of the native engine's JAX path (issue 23), one run of at most ~8 minutes on
# one H100/H200, from the repository root:
#   1. the device: nvidia-smi, python, jax.devices();
#   2. dependencies: what is missing comes from the wheel folder $WHEELS (the device machine
#      has no network: prepare it with --fetch-wheels and carry it), else from
#      `pip install -e .[test]`, and `.[cuda]` (jax[cuda12]) when JAX sees no accelerator;
#      a clear error when neither works;
#   3. the oracle tests on the JAX backend, on the accelerator: pytest -m jax (native engine =
#      neural-tangents to 1e-10 in float64);
#   4. benchmarks/kernel_speed.py --backend jax on the 28×28 GAP and Myrtle-5 cases: the JAX
#      path against neural-tangents on the same GPU;
#   5. benchmarks/jax_tiles.py: what XLA made of the tile program and the seconds per tile
#      size, for the engine's conv (gather) and the one before it (shifts);
#   6. one CSV, $OUT/device_check.csv: case, backend, device, n, nt_seconds, iw_seconds, ratio,
#      max_rel_diff, tests_passed, tests_failed, status (+ the tile rows' columns).
# A step that fails or runs out of its time is recorded in the CSV and the next one runs.
#
#   bash benchmarks/device_check.sh                 # on the accelerator
#   bash benchmarks/device_check.sh --cpu-smoke     # anywhere: the CPU, tiny sizes, a few tests
#   bash benchmarks/device_check.sh --fetch-wheels  # with network: the wheels the device lacks
#
# Environment: OUT (default results/device_check), PYTHON (default python3), WHEELS (default
# .whl), KS_SIZE (kernel_speed's size flag, default --quick; empty for its full size),
# DEVICE_PY (the device's Python for --fetch-wheels, default 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=gpu
case "${1:-}" in
  "") ;;
  --cpu-smoke) MODE=cpu ;;
  --fetch-wheels) MODE=wheels ;;
  *) echo "usage: $0 [--cpu-smoke | --fetch-wheels]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}

if [ "$MODE" = wheels ]; then
  # What the device image lacks of the project's needs (KINDS.md lists its packages):
  # neural-tangents (the oracle) and its frozendict; both pure Python.
  mkdir -p "$WHEELS"
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version "${DEVICE_PY:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WHEELS" neural-tangents==0.6.5 frozendict==2.5.1
  echo "wheels in $WHEELS: carry it to the device (run's carry: [\"$WHEELS\"])"
  exit 0
fi

OUT=${OUT:-results/device_check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
exec > >(tee "$OUT/device_check.log") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1 PYTHONUNBUFFERED=1
if [ "$MODE" = cpu ]; then
  export JAX_PLATFORMS=cpu
fi
START=$SECONDS
step() { echo; echo "=== [$((SECONDS - START)) s] $*"; }
die() { echo "device_check: $*" >&2; exit 3; }

# 1. The device --------------------------------------------------------------------------
step "device"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi || true
else
  echo "no nvidia-smi"
fi
"$PY" --version

# 2. Dependencies --------------------------------------------------------------------------
step "dependencies"
MODULES="jax numpy scipy optax pandas matplotlib tqdm numba neural_tangents frozendict pytest xdist"
missing() {
  "$PY" - $MODULES <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}
PIP_OFFLINE=(--retries 0 --timeout 10)  # no network: fail in seconds, not minutes
MISSING=$(missing)
if [ -n "$MISSING" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  echo "missing: $MISSING; installing the wheels in $WHEELS"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$WHEELS"/*.whl
  export PYTHONPATH="$PYTHONPATH:$WORK/site"
  MISSING=$(missing)
fi
if [ -n "$MISSING" ]; then
  echo "missing: $MISSING; trying pip install -e .[test] (needs network)"
  "$PY" -m pip install -q "${PIP_OFFLINE[@]}" -e ".[test]" || true
  MISSING=$(missing)
fi
[ -z "$MISSING" ] || die "missing Python modules: $MISSING. No wheel in $WHEELS covers them and \
pip could not install .[test]: on a machine with network run 'bash $0 --fetch-wheels' and carry \
$WHEELS to this one."
probe() {  # three lines: versions and devices, the default backend, the device's name
  XLA_PYTHON_CLIENT_PREALLOCATE=false "$PY" - <<'EOF'
import jax, jaxlib
d = jax.devices()
print(f"jax {jax.__version__}, jaxlib {jaxlib.__version__}: {d}")
print(jax.default_backend())
print(f"{d[0].platform}:{getattr(d[0], 'device_kind', '') or d[0].platform} x{len(d)}")
EOF
}
PROBE=$(probe)
if [ "$MODE" = gpu ] && [ "$(sed -n 2p <<<"$PROBE")" = cpu ]; then
  echo "JAX sees no accelerator; trying pip install -e .[cuda] (jax[cuda12], needs network)"
  "$PY" -m pip install -q "${PIP_OFFLINE[@]}" -e ".[cuda]" || true
  PROBE=$(probe)
  [ "$(sed -n 2p <<<"$PROBE")" != cpu ] || die "JAX sees no accelerator and jax[cuda12] \
could not be installed (no network?): install a CUDA jaxlib, or run '$0 --cpu-smoke'."
fi
sed -n 1p <<<"$PROBE"
DEVICE=$(sed -n 3p <<<"$PROBE")
echo "device: $DEVICE"

# 3. The oracle tests on the JAX backend ---------------------------------------------------
if [ "$MODE" = cpu ]; then
  WORKERS=2 T_TESTS=600 T_KS=300 T_TILES=300
  SELECT=(-m jax -k "myrtle5-2d-relu or convnet2d-circular-gap-relu or pool or generic")
  KS_ARGS=(--tiny)
  TILE_ARGS=(--tiny --conv gather shifts)
else
  WORKERS=8 T_TESTS=180 T_KS=150 T_TILES=120
  SELECT=(-m jax)
  KS_ARGS=(${KS_SIZE---quick} --only convnet-gap-2d-28 myrtle5)
  TILE_ARGS=(--tiles auto 1 8 --conv gather shifts)
fi
step "oracle tests: pytest ${SELECT[*]} (timeout ${T_TESTS}s)"
set +e
# Each pytest worker is a JAX process on the one GPU: no process takes 75 % of it up front.
XLA_PYTHON_CLIENT_PREALLOCATE=false timeout -k 10 "$T_TESTS" "$PY" -m pytest -q -p no:cacheprovider \
  -n "$WORKERS" "${SELECT[@]}" --junitxml="$OUT/junit.xml" tests/test_native_engine.py \
  tests/test_user_network.py tests/test_activations.py tests/test_kernels.py
TEST_RC=$?

# 4. kernel_speed: the JAX path against neural-tangents on the same device ------------------
step "kernel_speed --backend jax ${KS_ARGS[*]} (timeout ${T_KS}s)"
timeout -k 10 "$T_KS" "$PY" benchmarks/kernel_speed.py --backend jax "${KS_ARGS[@]}" \
  --out "$WORK/kernel_speed" --fresh
KS_RC=$?

# 5. What XLA made of a tile, and the seconds per tile size ---------------------------------
step "jax_tiles ${TILE_ARGS[*]} (timeout ${T_TILES}s)"
timeout -k 10 "$T_TILES" "$PY" benchmarks/jax_tiles.py "${TILE_ARGS[@]}" --out "$WORK/jax_tiles" \
  --fresh
TILES_RC=$?
set -e

# 6. One CSV ------------------------------------------------------------------------------
step "device_check.csv"
for f in "$WORK/kernel_speed/kernel_speed.csv" "$WORK/jax_tiles/jax_tiles.csv"; do
  [ -f "$f" ] && cp "$f" "$OUT/"
done
DEVICE="$DEVICE" TEST_RC=$TEST_RC KS_RC=$KS_RC TILES_RC=$TILES_RC "$PY" - "$OUT" <<'EOF'
"""Merge the steps' outputs into device_check.csv (rc 124: the step ran out of its time)."""
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

out = Path(sys.argv[1])
device, rc = os.environ["DEVICE"], {k: int(os.environ[k]) for k in ("TEST_RC", "KS_RC",
                                                                     "TILES_RC")}


def status(code: int) -> str:
    return "ok" if code == 0 else "timeout" if code == 124 else f"failed (rc {code})"


passed = failed = None
if (out / "junit.xml").exists():
    suites = ET.parse(out / "junit.xml").getroot()
    suites = [suites] if suites.tag == "testsuite" else list(suites)
    n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors",
                                                            "skipped")}
    failed = n["failures"] + n["errors"]
    passed = n["tests"] - failed - n["skipped"]
rows = [{"case": "pytest -m jax", "status": status(rc["TEST_RC"])}]
ks = out / "kernel_speed.csv"
if ks.exists():
    for r in pd.read_csv(ks).to_dict("records"):
        rows.append({"case": r["case"], "backend": r.get("backend", "jax"),
                     "dtype": r.get("dtype", "float64"), "n": r.get("n"),
                     "nt_seconds": r["nt_seconds"],
                     "iw_seconds": r["iw_seconds"], "ratio": r["time_ratio_nt_over_iw"],
                     "max_rel_diff": r["max_rel_diff_runtime"], "status": "ok"})
if rc["KS_RC"] or not ks.exists():
    rows.append({"case": "kernel_speed", "status": status(rc["KS_RC"]) if rc["KS_RC"]
                 else "no kernel_speed.csv"})
tiles = out / "jax_tiles.csv"
if tiles.exists():
    for r in pd.read_csv(tiles).to_dict("records"):
        rows.append({**{k: v for k, v in r.items() if k not in ("case", "device")},
                     "case": f"{r['case']} conv={r['conv']} tile={r['tile']}",
                     "status": "ok"})
if rc["TILES_RC"] or not tiles.exists():
    rows.append({"case": "jax_tiles", "status": status(rc["TILES_RC"]) if rc["TILES_RC"]
                 else "no jax_tiles.csv"})
df = pd.DataFrame(rows).assign(device=device, tests_passed=passed, tests_failed=failed)
df["backend"] = df["backend"].fillna("jax") if "backend" in df else "jax"
first = ["case", "backend", "device", "n", "nt_seconds", "iw_seconds", "ratio", "max_rel_diff",
         "tests_passed", "tests_failed", "status"]
df = df.reindex(columns=first + [c for c in df.columns if c not in first])
df.to_csv(out / "device_check.csv", index=False)
with pd.option_context("display.width", 200, "display.max_columns", 12):
    print(df[first].to_string(index=False))
EOF
step "done: $OUT/device_check.csv"
# Exit 1 when a step failed or ran out of time (the CSV says which).
[ "$TEST_RC" = 0 ] && [ "$KS_RC" = 0 ] && [ "$TILES_RC" = 0 ]
