#!/usr/bin/env bash
# CPTR's GPU proof in one command (docs/device_check.md, issue 18).
#
# On a GPU machine (Python 3.12 with torch + CUDA, numpy, onnx, onnxruntime, Triton and nvcc; no package
# index), from the repository root, after `make wheelhouse` was run on a machine with PyPI and
# dist/wheelhouse/ was copied along:
#
#     benchmarks/device_check.sh                 # results under $OUT (default ./device_check_out)
#     benchmarks/device_check.sh --budget 300    # fewer seconds: the least important steps go first
#     benchmarks/device_check.sh --dry-run       # the rehearsal on a CPU machine (fresh venv, no index)
#
# Steps, each with its own time limit, each reported as pass / fail / skipped with the reason in
# $OUT/summary.json and $OUT/summary.md (rewritten after every step, so a killed run still reports):
#   install     venv (--system-site-packages: the machine's torch is used untouched), then
#               pip install --no-index --find-links dist/wheelhouse cptr; checks that torch and numpy are
#               unchanged, that the installed wheel imports from outside the tree, and `cptr --help`
#   versions    GPU, driver, CUDA, torch, nvcc, Triton, numpy, onnx(runtime) versions -> versions.json/.txt
#   smoke       a tiny CPU run of benchmarks/latency.py (the harness works before GPU time is spent on it)
#   kernels     builds the CUDA extension (cptr.ops.load) and compares it with the reference ops
#   pytest-gpu  pytest -m gpu tests/ (junit XML in $OUT)
#   bench-256   256 px channel_multiplier=2 synthesis, batch 1,8,32,64: eager fp32/fp16, reference ops
#               and CPTR kernels; output error of each against the fp32 eager reference
#   bench-graph the same, replayed from CUDA graphs (fp32, fp16, export form fp16)
#   bench-aoti  the same, AOTInductor engines (fp32, fp16)
#   bench-1024  one 1024 px row (batch 1): eager and CUDA-graph engines
#   plot        PNG of every benchmark run (only where matplotlib is installed; else how to draw it later)
# A failing step never stops the others. The budget (--budget, default 480 s) is shared: before each
# step, the minimum time of every later step at least as important is held back; a step that no
# longer fits is skipped ("budget"), and every step's time limit is cut to what is left.
#
# --dry-run (a CPU machine): a FRESH venv without system site-packages, into which only torch, numpy,
# onnx, onnxruntime and their own dependencies are linked from --python's environment (what the GPU
# machine is known to have); everything else must come from the wheelhouse with --no-index. Every step
# runs up to where a GPU is needed; the GPU steps report "skipped: no CUDA".
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/benchmarks/device_check.sh"

usage() {
    sed -n '2,/^set -u$/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//'
    cat <<EOF
Options:
  --dry-run           the CPU rehearsal described above
  --budget SECONDS    time for every step together (default 480)
  --wheelhouse DIR    wheels to install from (default dist/wheelhouse)
  --python PY         the interpreter with the machine's torch (default: python3.12, python3 or python,
                      the first that imports torch; with --dry-run .venv/bin/python when present)
  --venv DIR          where the venv goes (default: a new temporary folder, removed at the end)
  --keep-venv         do not remove the temporary venv
  --skip STEP,...     steps not to run (reported as skipped), e.g. --skip pytest-gpu,bench-1024 to give
                      bench-aoti the time on a second attempt; install and versions always run
Environment: OUT (results folder, default ./device_check_out), TORCH_EXTENSIONS_DIR (kernel build cache,
default a temporary folder).
EOF
}

# ------------------------------------------------------------------------------ one step (internal)
# The script runs each step as `timeout LIMIT device_check.sh --step NAME`, with its state exported.
# Exit 0: pass, 77: skipped (reason in $STEP_REASON), anything else: fail.

note() { printf '%s\n' "$*" > "$STEP_REASON"; }
last_line() { grep -v '^[[:space:]]*$' "${1:-$STEP_LOG}" 2>/dev/null | tail -n 1 | cut -c1-300; }

step_install() {
    local wh=$WHEELHOUSE pipw
    echo "== python: $BASE_PY ($("$BASE_PY" -c 'import sys; print(sys.version.split()[0])'))"
    if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then note "refusing to replace $VENV: it is not a venv"; return 1; fi
    rm -rf "$VENV"
    if [ "$DRY_RUN" = 1 ]; then
        echo "== dry run: fresh venv without system site-packages: $VENV"
        "$BASE_PY" -m venv "$VENV" || { note "python -m venv failed"; return 1; }
        machine_site || { note "could not link the machine packages (torch, numpy, onnx, onnxruntime) into the venv"; return 1; }
    else
        echo "== venv with the machine's site-packages (its torch, numpy, onnx, Triton): $VENV"
        "$BASE_PY" -m venv --system-site-packages "$VENV" \
            || "$BASE_PY" -m venv --system-site-packages --without-pip "$VENV" \
            || { note "python -m venv failed"; return 1; }
        if ! "$VPY" -c 'import torch' 2>/dev/null; then
            # --python is itself a venv (its packages are not "system" ones): a .pth file adds its
            # site-packages after the new venv's own, which is what --system-site-packages would give.
            echo "== $BASE_PY is a venv: its site-packages are linked into $VENV by a .pth file"
            "$BASE_PY" -c 'import site; print("".join(f"import site; site.addsitedir({p!r})\n" for p in site.getsitepackages()))' \
                > "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_cptr_machine_site.pth"
        fi
    fi
    if ! "$VPY" -m pip --version >/dev/null 2>&1; then
        pipw=$(ls "$wh"/pip-*.whl 2>/dev/null | head -n 1)
        echo "== no pip in the venv: bootstrapping it from ${pipw:-?}"
        [ -n "$pipw" ] && "$VPY" "$pipw/pip" install --no-index "$pipw" || { note "no pip in the venv and none in $wh"; return 1; }
    fi
    "$VPY" -m pip --version
    local how="pip install --no-index --find-links $wh cptr[gpu] pytest pytest-timeout"
    echo "== $how"
    if ! "$VPY" -m pip install --no-index --find-links "$wh" "cptr[gpu]" pytest pytest-timeout; then
        # e.g. the machine's numpy 2 against cptr's numpy<2 pin (kept for pytriton/mediapipe, not used here)
        how="cptr installed with --no-deps: its dependencies did not resolve against the machine's packages ($(grep -E '^ERROR: ' "$STEP_LOG" | tail -n 1 | cut -c8-200))"
        echo "== retrying: the tools from the wheelhouse, then cptr --no-deps"
        "$VPY" -m pip install --no-index --find-links "$wh" "pillow>=10" "typer>=0.12" "rich>=13" "tqdm>=4.66" \
            "ninja>=1.11" pytest pytest-timeout \
            && "$VPY" -m pip install --no-index --find-links "$wh" --no-deps cptr \
            || { note "pip install from $wh failed (see logs/install.log)"; return 1; }
    fi
    # the wheelhouse's cptr in the venv even where some cptr is installed already (pip would keep that one)
    "$VPY" -m pip install --no-index --find-links "$wh" --no-deps --force-reinstall cptr \
        || { note "pip install --force-reinstall cptr from $wh failed"; return 1; }
    if ! "$VPY" -c 'import setuptools' 2>/dev/null; then  # torch.utils.cpp_extension imports it
        "$VPY" -m pip install --no-index --find-links "$wh" "setuptools<81" || { note "setuptools missing and not installable"; return 1; }
    fi
    "$VPY" -m pip check || echo "(pip check reports the above; informational)"
    echo "== the installed wheel, imported from outside the tree"
    local report
    report=$(cd / && "$VPY" - "$VENV" "$BASE_TORCH" "$BASE_NUMPY" <<'EOF'
import sys
from pathlib import Path
venv, base_torch, base_numpy = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3]
import torch, numpy, cptr, cptr.ops, cptr.bench.cli, typer, rich, tqdm, ninja, pytest  # noqa: E401,F401
problems = []
if torch.__version__ != base_torch:
    problems.append(f"torch changed: {base_torch} -> {torch.__version__}")
if numpy.__version__ != base_numpy:
    problems.append(f"numpy changed: {base_numpy} -> {numpy.__version__}")
if Path(torch.__file__).resolve().is_relative_to(venv):
    problems.append(f"torch was installed into the venv: {torch.__file__}")
if not Path(cptr.__file__).resolve().is_relative_to(venv):
    problems.append(f"cptr imported from {cptr.__file__}, not from the venv")
missing = [s for s in cptr.ops.SOURCES if not (cptr.ops.KERNEL_DIR / s).is_file()]
if missing:
    problems.append(f"kernel sources missing from the wheel: {missing}")
print(f"torch {torch.__version__} and numpy {numpy.__version__} unchanged; cptr from {cptr.__file__}"
      if not problems else "; ".join(problems))
sys.exit(1 if problems else 0)
EOF
    )
    local rc=$?
    echo "$report"
    if [ $rc -ne 0 ]; then note "${report:-the installed packages do not import: $(last_line)}"; return 1; fi
    "$VENV/bin/cptr" --help >/dev/null || { note "cptr --help failed"; return 1; }
    note "$how; $report"
}

# --dry-run: link torch, numpy, onnx, onnxruntime and the distributions they require (as installed in
# --python's environment) into $VENV/machine-site, which a .pth file puts after the venv's site-packages:
# what `--system-site-packages` gives on the GPU machine, and nothing else.
machine_site() {
    local purelib
    purelib=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
    "$BASE_PY" - "$VENV/machine-site" <<'EOF' || return 1
import importlib.metadata as md, os, re, sys
from pathlib import Path
dest = Path(sys.argv[1]); dest.mkdir(parents=True, exist_ok=True)
try:
    from packaging.requirements import Requirement
except ImportError:
    Requirement = None
def requires(dist):
    out = []
    for text in dist.requires or []:
        if Requirement is not None:
            r = Requirement(text)
            if r.marker is not None and not r.marker.evaluate({"extra": ""}):
                continue
            out.append(r.name)
        elif "extra ==" not in text:
            out.append(re.split(r"[\s;<>=!~\[(]", text, maxsplit=1)[0])
    return out
todo, seen, linked = ["torch", "numpy", "onnx", "onnxruntime"], set(), []
while todo:
    name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
    if name in seen:
        continue
    seen.add(name)
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    site = Path(dist.locate_file(""))
    tops = {Path(f).parts[0] for f in (dist.files or []) if not str(f).startswith("..")}
    for top in sorted(tops):
        src = site / top
        if src.exists() and not (dest / top).exists() and top != "__pycache__":
            (dest / top).symlink_to(src)
    linked.append(f"{dist.metadata['Name']}=={dist.version}")
    todo += requires(dist)
print("machine packages linked for the dry run:", ", ".join(sorted(linked)))
EOF
    echo "$VENV/machine-site" > "$purelib/_cptr_machine_site.pth"
}

step_versions() {
    {
        echo "== nvidia-smi"
        if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
        echo "== nvcc"
        local nvcc
        nvcc=$(command -v nvcc || { [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] && echo "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"; })
        if [ -n "$nvcc" ]; then echo "$nvcc"; "$nvcc" --version; else echo "nvcc: not found"; fi
    } > "$OUT/versions.txt" 2>&1
    cat "$OUT/versions.txt"
    "$VPY" - "$OUT/versions.json" <<'EOF'
import json, platform, shutil, subprocess, sys, importlib.metadata as md
out = {"python": sys.version.split()[0], "platform": platform.platform(), "executable": sys.executable}
def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
import torch
out["torch"] = torch.__version__
out["torch_cuda"] = torch.version.cuda
out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
out["cuda_available"] = torch.cuda.is_available()
if out["cuda_available"]:
    out["gpus"] = [{"name": torch.cuda.get_device_name(i), "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                    "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                   for i in range(torch.cuda.device_count())]
if shutil.which("nvidia-smi"):
    out["nvidia_smi"] = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"])
    out["driver"] = (out["nvidia_smi"].split(",")[1].strip() if out["nvidia_smi"].count(",") >= 1 else None)
else:
    out["nvidia_smi"] = None
from torch.utils.cpp_extension import CUDA_HOME
nvcc = shutil.which("nvcc") or (f"{CUDA_HOME}/bin/nvcc" if CUDA_HOME else None)
out["cuda_home"] = CUDA_HOME
out["nvcc"] = next((l.split("release", 1)[1].strip() for l in run([nvcc, "--version"]).splitlines() if "release" in l), "?") \
    if nvcc and shutil.which(nvcc) else None
for dist in ("numpy", "triton", "onnx", "onnxruntime", "onnxruntime-gpu", "ninja", "pytest", "cptr", "tensorrt", "matplotlib"):
    try:
        out[dist] = md.version(dist)
    except md.PackageNotFoundError:
        out[dist] = None
json.dump(out, open(sys.argv[1], "w"), indent=1)
for k, v in out.items():
    print(f"{k}: {v}")
g = (out.get("gpus") or [{}])[0]
print(f"LINE: GPU {g.get('name', 'none')}, driver {out.get('driver')}, torch {out['torch']} (CUDA {out['torch_cuda']}), "
      f"nvcc {out['nvcc']}, triton {out['triton']}, numpy {out['numpy']}")
EOF
    local rc=$?
    [ $rc -eq 0 ] || { note "could not read the versions with the venv's python: $(last_line)"; return 1; }
    note "$(grep '^LINE: ' "$STEP_LOG" | tail -n 1 | sed 's/^LINE: //')"
}

step_smoke() {
    mkdir -p "$OUT/smoke"
    echo "== python benchmarks/latency.py --quick on the CPU (harness check)"
    "$VPY" benchmarks/latency.py --quick --device cpu --target torch,cuda-graph --no-plot --no-record \
        --results-dir "$OUT/smoke" || { note "benchmarks/latency.py --quick --device cpu failed"; return 1; }
    ls "$OUT"/smoke/*.json >/dev/null 2>&1 || { note "the quick benchmark wrote no JSON"; return 1; }
    note "benchmarks/latency.py --quick --device cpu --target torch,cuda-graph ran (tiny model)"
}

step_kernels() {
    "$VPY" - "$HAS_CUDA" <<'EOF'
import sys, time
import torch
import cptr.ops as k
from torch.utils.cpp_extension import CUDA_HOME, is_ninja_available
sources = all((k.KERNEL_DIR / s).is_file() for s in k.SOURCES)
toolkit = CUDA_HOME or ("n/a for a CPU build of torch" if torch.version.cuda is None else "NOT FOUND")
have = f"build prerequisites: ninja {'yes' if is_ninja_available() else 'NO'}, CUDA toolkit {toolkit}, " \
       f"kernel sources {'present' if sources else 'MISSING'}"
print(have)
missing = k.missing_requirement()
if missing and not torch.cuda.is_available():
    print(f"SKIP: no CUDA: {missing}; {have}")
    sys.exit(77)
if missing:
    print(f"FAIL: {missing}")
    sys.exit(1)
t = time.perf_counter()
k.load(verbose=True, strict=True)
built = time.perf_counter() - t
from cptr.ops import fused_leaky_relu_ref, make_kernel, upfirdn2d_ref
x = torch.randn(2, 8, 33, 33, device="cuda")
kern = make_kernel([1, 3, 3, 1]) * 4
err_up = (k.upfirdn2d_cuda(x, kern.cuda(), (2, 2), (1, 1), (2, 1, 2, 1)).cpu() - upfirdn2d_ref(x.cpu(), kern, up=2, down=1, pad=(2, 1))).abs().max().item()
b = torch.randn(8, device="cuda")
err_act = (k.fused_leaky_relu_cuda(x, b).cpu() - fused_leaky_relu_ref(x.cpu(), b.cpu())).abs().max().item()
print(f"built and loaded in {built:.1f} s; max abs error vs reference: upfirdn2d {err_up:.2e}, bias-act {err_act:.2e}")
ok = err_up < 1e-4 and err_act < 1e-4
print(("OK" if ok else "FAIL") + f": built in {built:.0f} s, upfirdn2d err {err_up:.1e}, bias-act err {err_act:.1e}")
sys.exit(0 if ok else 1)
EOF
    local rc=$?
    note "$(grep -E '^(SKIP|FAIL|OK): ' "$STEP_LOG" | tail -n 1 | sed -E 's/^(SKIP|OK): //')"
    return $rc
}

step_pytest_gpu() {
    # --continue-on-collection-errors: a test module that needs what the GPU machine lacks (cv2 for the
    # alignment tests, ...) must not hide the gpu tests of the others; it fails the step only if it has
    # gpu tests itself.
    "$VPY" -m pytest -m gpu tests/ -ra -p no:cacheprovider --continue-on-collection-errors \
        --junitxml="$OUT/pytest-gpu.xml" -o junit_family=xunit2 --timeout=300
    local rc=$?
    "$VPY" - "$OUT/pytest-gpu.xml" "$rc" "$HAS_CUDA" "$STEP_REASON" "$(last_line)" <<'EOF'
import sys, xml.etree.ElementTree as ET
from pathlib import Path
xml, rc, has_cuda, reason_file, last = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
def done(status, text):
    Path(reason_file).write_text(text + "\n")
    sys.exit({"pass": 0, "skipped": 77}.get(status, 1))
try:
    root = ET.parse(xml).getroot()
except Exception as e:  # noqa: BLE001
    done("fail", f"pytest exit {rc} and no junit XML ({type(e).__name__}): {last}")
counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
broken_gpu, unimportable = [], []
for case in root.iter("testcase"):
    kids = {c.tag for c in case}
    if not case.get("classname"):  # a whole module: collection error or module-level skip
        err = case.find("error")
        if err is not None:
            module = Path(*case.get("name", "?").split(".")).with_suffix(".py")
            last = [l for l in (err.text or "").splitlines() if l.startswith("E ")][-1:] or [err.get("message", "")]
            text = f"{module.name} ({last[0][1:].strip()})"
            has_gpu = module.is_file() and "mark.gpu" in module.read_text(errors="replace")
            (broken_gpu if has_gpu else unimportable).append(text)
        continue
    key = "failed" if "failure" in kids else "error" if "error" in kids else "skipped" if "skipped" in kids else "passed"
    counts[key] += 1
total = sum(counts.values())
what = f"{total} gpu tests: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, {counts['skipped']} skipped"
extra = ("; test modules without gpu tests that cannot be imported here: " + ", ".join(unimportable)) if unimportable else ""
if broken_gpu:
    done("fail", "test modules with gpu tests cannot be imported: " + ", ".join(broken_gpu) + "; " + what + extra)
if rc not in (0, 1) or total == 0:
    done("fail", f"pytest exit {rc}: " + (what if total else "no gpu test was collected") + extra)
if counts["failed"] or counts["error"]:
    done("fail", what + extra)
if not has_cuda and counts["skipped"] == total:
    done("skipped", f"no CUDA: {total} gpu tests collected, all skipped" + extra)
done("pass", what + extra)
EOF
}

# bench NAME ARGS...: benchmarks/latency.py into $OUT/bench/NAME (JSON) and $OUT/bench/RESULTS.md
bench() {
    local name=$1; shift
    if [ "$HAS_CUDA" = 0 ]; then note "no CUDA: torch.cuda.is_available() is False"; return 77; fi
    mkdir -p "$OUT/bench/$name"
    "$VPY" benchmarks/latency.py --device cuda --seconds 1 --warmup 3 --pool 8 --check 1 --no-plot \
        --results-dir "$OUT/bench/$name" --record-to "$OUT/bench/RESULTS.md" "$@"
    local rc=$?
    local failed
    failed=$(grep -E '^FAILED ' "$STEP_LOG" | sed 's/^FAILED //' | cut -c1-200 | paste -sd ';' -)
    if [ $rc -eq 0 ]; then note "measured: $*"; return 0; fi
    if ls "$OUT/bench/$name"/*.json >/dev/null 2>&1; then note "some engines failed: ${failed:-see the log}"; else note "no results (exit $rc); ${failed:-see the log}"; fi
    return 1
}
step_bench_256() { bench bench-256 --target torch --model ffhq256 --batch 1,8,32,64; }
step_bench_graph() { bench bench-graph --target cuda-graph --model ffhq256 --batch 1,8,32,64; }
step_bench_aoti() { bench bench-aoti --target torch-engine --model ffhq256 --batch 1,8,32,64; }
step_bench_1024() { bench bench-1024 --target torch,cuda-graph --model ffhq1024 --batch 1; }

step_plot() {
    local jsons
    jsons=$(ls "$OUT"/bench/*/*.json 2>/dev/null)
    if [ -z "$jsons" ]; then note "no GPU benchmark results to plot"; return 77; fi
    if ! "$VPY" -c 'import matplotlib' 2>/dev/null; then
        note "matplotlib is not installed here; draw it later: python benchmarks/latency.py --replot OUT/bench/*/*.json --plot latency.png"
        return 77
    fi
    # shellcheck disable=SC2086
    "$VPY" benchmarks/latency.py --replot $jsons --plot "$OUT/bench/latency.png" || { note "--replot failed"; return 1; }
    note "bench/latency.png"
}

# ------------------------------------------------------------------------------ summary

write_summary() {
    local py
    py=$(command -v python3 || echo "$BASE_PY")
    "$py" - "$OUT" "$MODE" "$BUDGET" "$SECONDS" <<'EOF'
import glob, json, os, sys, datetime as dt
out, mode, budget, elapsed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
steps = []
if os.path.exists(f"{out}/.steps.tsv"):
    for line in open(f"{out}/.steps.tsv", encoding="utf-8", errors="replace"):
        name, status, seconds, limit, reason = (line.rstrip("\n").split("\t") + [""] * 5)[:5]
        steps.append({"name": name, "status": status, "seconds": int(seconds or 0), "limit_s": int(limit or 0),
                      "reason": reason, "log": f"logs/{name}.log"})
versions = {}
if os.path.exists(f"{out}/versions.json"):
    try:
        versions = json.load(open(f"{out}/versions.json"))
    except ValueError:
        pass
rows = []
for path in sorted(glob.glob(f"{out}/bench/*/*.json")):
    try:
        run = json.load(open(path))
    except ValueError:
        continue
    for r in run.get("results", []):
        e, s = r.get("error") or {}, r.get("stats") or {}
        rows.append({"run": os.path.relpath(path, out), "model": run["config"]["model"], "engine": r["engine"],
                     "precision": r.get("precision"), "batch": r["batch"], "status": r["status"], "reason": r.get("reason", ""),
                     "median_ms": s.get("median_ms"), "p95_ms": s.get("p95_ms"), "img_per_s": s.get("throughput_ips"),
                     "max_abs_err": e.get("max_abs"), "mean_abs_err": e.get("mean_abs")})
ok = [r for r in rows if r["status"] == "ok" and r["model"] == "ffhq256"]
targets = {}
if ok:
    b1 = [r for r in ok if r["batch"] == 1]
    fp16 = [r for r in ok if r["precision"] == "fp16"]
    best1 = min(b1, key=lambda r: r["median_ms"]) if b1 else None
    best16 = max(fp16, key=lambda r: r["img_per_s"]) if fp16 else None
    errs = [r for r in ok if r["max_abs_err"] is not None]
    targets = {
        "batch1_latency_ms": {"target": 0.7, "best": best1 and round(best1["median_ms"], 4), "engine": best1 and best1["engine"]},
        "fp16_img_per_s": {"target": 4000, "best": best16 and round(best16["img_per_s"], 1),
                           "engine": best16 and f"{best16['engine']} @ batch {best16['batch']}"},
        "max_abs_err_vs_fp32_eager": {"target": 2e-2, "worst_per_engine": {
            n: max(r["max_abs_err"] for r in errs if r["engine"] == n) for n in dict.fromkeys(r["engine"] for r in errs)}},
    }
counts = {k: sum(s["status"] == k for s in steps) for k in ("pass", "fail", "skipped")}
summary = {"schema": "cptr-device-check/1", "mode": mode, "budget_s": budget, "elapsed_s": elapsed,
           "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "counts": counts,
           "steps": steps, "versions": versions, "targets": targets, "bench": rows}
tmp = f"{out}/summary.json.tmp"
json.dump(summary, open(tmp, "w"), indent=1)
os.replace(tmp, f"{out}/summary.json")

def f(v, d=3):
    return "-" if v is None else (f"{v:.2e}" if isinstance(v, float) and abs(v) < 1e-2 and v != 0 else f"{v:.{d}g}" if isinstance(v, float) else str(v))
g = (versions.get("gpus") or [{}])[0]
md = [f"# CPTR device check ({mode})", "",
      f"- Elapsed {elapsed} s of a {budget} s budget; steps: {counts['pass']} pass, {counts['fail']} fail, {counts['skipped']} skipped.",
      f"- GPU: {g.get('name', 'none')} (capability {g.get('capability', '-')}, {g.get('memory_gib', '-')} GiB); "
      f"driver {versions.get('driver')}; torch {versions.get('torch')} (CUDA {versions.get('torch_cuda')}, cuDNN {versions.get('cudnn')}); "
      f"nvcc {versions.get('nvcc')}; triton {versions.get('triton')}; numpy {versions.get('numpy')}; "
      f"onnxruntime {versions.get('onnxruntime') or versions.get('onnxruntime-gpu')}; Python {versions.get('python')}.",
      "", "| step | status | seconds | limit s | reason |", "|---|---|---|---|---|"]
md += [f"| {s['name']} | {s['status']} | {s['seconds']} | {s['limit_s']} | {s['reason'].replace('|', '/')} |" for s in steps]
if rows:
    md += ["", "## Benchmark (median ms per batch, images/s, max/mean abs error vs the fp32 eager reference on the CPU)", "",
           "| model | engine | prec. | batch | median ms | p95 ms | img/s | max abs err | mean abs err | status |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['engine']} | {r['precision'] or '-'} | {r['batch'] or '-'} | {f(r['median_ms'])} | {f(r['p95_ms'])} | "
                  f"{f(r['img_per_s'])} | {f(r['max_abs_err'])} | {f(r['mean_abs_err'])} | "
                  f"{r['status'] + (': ' + r['reason'][:120].replace('|', '/') if r['status'] != 'ok' else '')} |")
if targets:
    t = targets
    md += ["", "## Against the issue's targets (256 px)", "",
           f"- batch-1 latency: best {t['batch1_latency_ms']['best']} ms ({t['batch1_latency_ms']['engine']}); target <= 0.7 ms.",
           f"- fp16 throughput: best {t['fp16_img_per_s']['best']} img/s ({t['fp16_img_per_s']['engine']}); target >= 4000 img/s.",
           "- worst max abs error per engine (target <= 2e-2): "
           + ", ".join(f"{n} {v:.2e}" for n, v in t["max_abs_err_vs_fp32_eager"]["worst_per_engine"].items()) + "."]
md += ["", "Files: `summary.json`, `versions.json`/`versions.txt`, `logs/<step>.log`, `pytest-gpu.xml`, "
       "`bench/<step>/*.json` (raw timings), `bench/RESULTS.md`, `bench/latency.png` (when matplotlib is there)."]
tmp = f"{out}/summary.md.tmp"
open(tmp, "w").write("\n".join(md) + "\n")
os.replace(tmp, f"{out}/summary.md")
EOF
}

# ------------------------------------------------------------------------------ internal entry

if [ "${1:-}" = "--step" ]; then
    cd "$ROOT" || exit 1
    "step_${2//-/_}"
    exit $?
fi

# ------------------------------------------------------------------------------ options

DRY_RUN=0; BUDGET=480; WHEELHOUSE="$ROOT/dist/wheelhouse"; BASE_PY=""; VENV=""; KEEP_VENV=0; SKIP_STEPS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --budget) BUDGET=${2:?--budget needs seconds}; shift ;;
        --budget=*) BUDGET=${1#*=} ;;
        --wheelhouse) WHEELHOUSE=${2:?}; shift ;;
        --python) BASE_PY=${2:?}; shift ;;
        --venv) VENV=${2:?}; shift ;;
        --keep-venv) KEEP_VENV=1 ;;
        --skip) SKIP_STEPS=${2:?--skip needs step names}; shift ;;
        --skip=*) SKIP_STEPS=${1#*=} ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$BUDGET" in ''|*[!0-9]*) echo "--budget takes whole seconds, got '$BUDGET'" >&2; exit 2 ;; esac

cd "$ROOT" || exit 1
OUT=${OUT:-./device_check_out}
mkdir -p "$OUT/logs" && OUT=$(cd "$OUT" && pwd) || { echo "cannot create OUT=$OUT" >&2; exit 2; }
rm -rf "$OUT/.steps.tsv" "$OUT/summary.json" "$OUT/summary.md" "$OUT/versions.json" "$OUT/versions.txt" \
    "$OUT/pytest-gpu.xml" "$OUT/bench" "$OUT/smoke" "$OUT/logs"/*.log
WHEELHOUSE=$(cd "$WHEELHOUSE" 2>/dev/null && pwd || echo "$WHEELHOUSE")
MODE=$([ "$DRY_RUN" = 1 ] && echo dry-run || echo gpu)

if [ -z "$BASE_PY" ]; then
    if [ "$DRY_RUN" = 1 ] && [ -x "$ROOT/.venv/bin/python" ]; then BASE_PY="$ROOT/.venv/bin/python"; fi
    for c in python3.12 python3 python; do
        [ -n "$BASE_PY" ] && break
        command -v "$c" >/dev/null && "$c" -c 'import torch' 2>/dev/null && BASE_PY=$(command -v "$c")
    done
fi
[ -n "$BASE_PY" ] || BASE_PY=$(command -v python3 || echo python3)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cptr-device-check.XXXXXX")
if [ -z "$VENV" ]; then VENV="$WORK/venv"; fi
cleanup() { if [ "$KEEP_VENV" = 0 ]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT
VPY="$VENV/bin/python"

# pip sees nothing of this machine's configuration (extra indexes, find-links, constraints): the
# wheelhouse alone must do. Nothing from ~/.local either.
for v in $(env | grep -o '^PIP_[A-Z_]*'); do unset "$v"; done
export PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off PYTHONNOUSERSITE=1
unset PYTHONPATH
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$WORK/torch_extensions}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
# the steps' temporary files (benchmark work folders, compiler caches) go with the venv
mkdir -p "$WORK/tmp" && export TMPDIR="$WORK/tmp"

BASE_TORCH=$("$BASE_PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "none")
BASE_NUMPY=$("$BASE_PY" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || echo "none")
HAS_CUDA=0
export ROOT OUT DRY_RUN BASE_PY BASE_TORCH BASE_NUMPY VENV VPY WHEELHOUSE HAS_CUDA

echo "== CPTR device check ($MODE): python $BASE_PY (torch $BASE_TORCH, numpy $BASE_NUMPY), wheelhouse $WHEELHOUSE"
echo "== results: $OUT; budget ${BUDGET}s"

# ------------------------------------------------------------------------------ the steps
# name  rank (0 = most important; cut last)  min seconds  max seconds  needs CUDA
PLAN="install 0 30 300 0
versions 0 5 60 0
smoke 6 15 120 0
kernels 1 60 300 0
pytest-gpu 2 60 300 0
bench-256 2 60 240 1
bench-graph 3 45 180 1
bench-aoti 3 150 360 1
bench-1024 5 45 150 1
plot 7 10 60 0"

FAILED=0
record() {  # name status seconds limit reason
    local reason=${5//$'\t'/ }
    reason=${reason//$'\n'/ }
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${reason:0:600}" >> "$OUT/.steps.tsv"
    printf '== %-11s %-7s %4ss  %s\n' "$1" "$2" "$3" "${reason:0:300}"
    [ "$2" = fail ] && FAILED=1
    write_summary || echo "(could not write the summary)" >&2
}

why_not() {  # name needs_cuda -> prints why the step will not run here (nothing: it runs)
    case "$1,$SKIP_STEPS," in install,*|versions,*) ;; *",$1,"*) echo "--skip $1"; return ;; esac
    if [ "$2" = 1 ] && [ "$HAS_CUDA" = 0 ]; then
        echo "no CUDA: torch.cuda.is_available() is False$([ "$DRY_RUN" = 1 ] && echo ' (dry run on a CPU machine)')"
    fi
}

after_install() {  # whatever install did: the python the later steps use, and whether CUDA is there
    if [ ! -x "$VPY" ]; then VPY=$BASE_PY; echo "== no venv: the remaining steps use $BASE_PY"; fi
    if "$VPY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then HAS_CUDA=1; fi
    export VPY HAS_CUDA
}

run_plan() {
    local i=0 name rank min max cuda
    local -a N R MN MX C
    while read -r name rank min max cuda; do N+=("$name"); R+=("$rank"); MN+=("$min"); MX+=("$max"); C+=("$cuda"); done <<<"$PLAN"
    for ((i = 0; i < ${#N[@]}; i++)); do
        run_one "$i"
        [ "${N[$i]}" = install ] && after_install
    done
}

run_one() {  # index into the plan arrays of run_plan
    local i=$1 name=${N[$1]} why
    why=$(why_not "$name" "${C[$i]}")
    if [ -n "$why" ]; then record "$name" skipped 0 0 "$why"; return; fi
    # hold back the minimum of every later step that is at least as important and will run
    local reserve=0 j
    for ((j = i + 1; j < ${#N[@]}; j++)); do
        if [ "${R[$j]}" -le "${R[$i]}" ] && [ -z "$(why_not "${N[$j]}" "${C[$j]}")" ]; then reserve=$((reserve + MN[j])); fi
    done
    local left=$((BUDGET - SECONDS)) allowed limit
    allowed=$((left - reserve))
    if [ "${R[$i]}" = 0 ] && [ "$allowed" -lt "${MN[$i]}" ]; then
        allowed=${MN[$i]}  # install and versions run whatever the budget: nothing else works without them
    elif [ "$allowed" -lt "${MN[$i]}" ]; then
        record "$name" skipped 0 0 "budget: ${left}s left, ${reserve}s held for more important steps, this one needs ${MN[$i]}s"
        return
    fi
    limit=$(( allowed < MX[i] ? allowed : MX[i] ))
    local log="$OUT/logs/$name.log" reasonf="$WORK/$name.reason" t0=$SECONDS rc took reason
    echo "== $name (limit ${limit}s) ..."
    : > "$reasonf"
    STEP_LOG=$log STEP_REASON=$reasonf timeout --kill-after=15 "$limit" "$SELF" --step "$name" > "$log" 2>&1
    rc=$?
    took=$((SECONDS - t0))
    reason=$(cat "$reasonf" 2>/dev/null)
    case $rc in
        0) record "$name" pass "$took" "$limit" "$reason" ;;
        77) record "$name" skipped "$took" "$limit" "$reason" ;;
        124|137) record "$name" fail "$took" "$limit" "timed out after ${limit}s${reason:+; $reason}" ;;
        *) [ -n "$reason" ] || reason="exit $rc: $(last_line "$log")"
           record "$name" fail "$took" "$limit" "$reason" ;;
    esac
}

if [ ! -f "$(ls "$WHEELHOUSE"/cptr-*.whl 2>/dev/null | head -n 1)" ]; then
    echo "== $WHEELHOUSE has no cptr wheel: run 'make wheelhouse' on a machine with PyPI and copy dist/wheelhouse along" >&2
fi
run_plan
write_summary
echo "== done in ${SECONDS}s: $OUT/summary.md"
cat "$OUT/summary.md"
exit $FAILED
