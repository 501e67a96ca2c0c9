"""Build the two kernel libraries once and cache them by what they are built from.

``torch``: ``libquantviz_torch.so``, the PyTorch operators (``csrc/torch_ops.cpp``), C++20 against torch's headers.
``executorch``: ``libquantviz_et.so``, the runtime kernels (``csrc/et_ops.cpp``), C++17 against the executorch
wheel's headers and ``libexecutorch.so``. The two never share flags: ExecuTorch's ``c10`` include path shadows
torch's.

The cache key hashes every source under ``csrc/``, the compiler command, the compiler's version and the torch and
executorch versions; a changed key builds a new library next to the old one. A file lock keeps two processes from
building the same library at once.

Example::

    path = build_library("executorch")   # kernels/build/<key>/libquantviz_et.so, built on first call only
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"
LIBRARY_KINDS = ("torch", "executorch")


class KernelBuildError(RuntimeError):
    """The compiler failed or is missing; the message carries its output and what to do."""


@dataclass(frozen=True)
class BuildPlan:
    kind: str
    source: Path
    output_name: str
    command: tuple[str, ...]  # without the output path


def cache_root() -> Path:
    return Path(os.environ.get("QUANTVIZ_KERNEL_CACHE", HERE / "build"))


def _site(package: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise KernelBuildError(f"package {package!r} is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def plan(kind: str) -> BuildPlan:
    """The compiler command for one library (``kind`` is ``"torch"`` or ``"executorch"``)."""
    cxx = os.environ.get("CXX", "g++")
    # -ffp-contract=off: no fused multiply-add, so float results equal the reference's; -fno-trapping-math lets
    # the compiler turn float clamps into vector min/max (results unchanged); -march=native: the library is built
    # on the machine that runs it (the CPU model is part of the cache key).
    common = ("-O3", "-march=native", "-fPIC", "-shared", "-ffp-contract=off", "-fno-trapping-math",
              "-fvisibility=hidden", f"-I{CSRC}")
    if kind == "torch":
        import torch

        t = _site("torch")
        return BuildPlan(kind, CSRC / "torch_ops.cpp", "libquantviz_torch.so", (
            cxx, "-std=c++20", *common, f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
            f"-I{t / 'include'}", f"-I{t / 'include/torch/csrc/api/include'}", str(CSRC / "torch_ops.cpp"),
            f"-L{t / 'lib'}", "-lc10", "-ltorch_cpu", "-ltorch", f"-Wl,-rpath,{t / 'lib'}"))
    if kind == "executorch":
        et = _site("executorch")
        return BuildPlan(kind, CSRC / "et_ops.cpp", "libquantviz_et.so", (
            cxx, "-std=c++17", *common, "-DC10_USING_CUSTOM_GENERATED_MACROS", "-DET_EVENT_TRACER_ENABLED",
            f"-I{et / 'include'}", f"-I{et / 'include/executorch/runtime/core/portable_type/c10'}",
            str(CSRC / "et_ops.cpp"), f"-L{et / 'lib'}", "-Wl,--no-as-needed", "-lexecutorch", "-Wl,--as-needed",
            f"-Wl,-rpath,{et / 'lib'}"))
    raise ValueError(f"kind must be one of {LIBRARY_KINDS}, got {kind!r}")


def _compiler_version(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError) as e:
        raise KernelBuildError(
            f"the C++ compiler {cxx!r} is not available ({e}); install it with `apt-get install g++` "
            "(scripts/system_deps.sh does) or point CXX at one") from e


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(lines)))


def cache_key(p: BuildPlan) -> str:
    h = hashlib.sha256()
    for f in sorted(CSRC.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(CSRC)).encode())
            h.update(f.read_bytes())
    h.update("\0".join(p.command).encode())
    h.update(_compiler_version(p.command[0]).encode())
    h.update(_cpu_model().encode())
    for dist in ("torch", "executorch"):
        h.update(f"{dist}={metadata.version(dist)}".encode())
    return h.hexdigest()[:16]


def library_path(kind: str) -> Path:
    """Where the library for the current sources and versions is (or will be) cached."""
    p = plan(kind)
    return cache_root() / cache_key(p) / p.output_name


def build_library(kind: str) -> Path:
    """Build ``kind`` unless the cache has it; returns the library's path."""
    p = plan(kind)
    out = cache_root() / cache_key(p) / p.output_name
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same library
        if out.exists():
            return out
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tmp_out = Path(tmp) / p.output_name
            run = subprocess.run([*p.command, "-o", str(tmp_out)], capture_output=True, text=True)
            if run.returncode != 0:
                tail = "\n".join(run.stderr.strip().splitlines()[-25:])
                raise KernelBuildError(f"building the {kind} kernel library failed:\n{tail}\n"
                                       f"command: {' '.join(p.command)}")
            shutil.move(str(tmp_out), out)
    _prune(out)
    return out


def _prune(keep: Path) -> None:
    """Remove older builds of the same library (a process that still maps one keeps its copy until it exits)."""
    for other in cache_root().glob(f"*/{keep.name}"):
        if other != keep:
            shutil.rmtree(other.parent, ignore_errors=True)


def main() -> None:
    """Build both libraries (what `make kernels` runs) and say where they are."""
    import time

    for kind in LIBRARY_KINDS:
        t = time.perf_counter()
        cached = library_path(kind).exists()
        path = build_library(kind)
        print(f"{kind}: {path} ({'cached' if cached else f'built in {time.perf_counter() - t:.1f} s'})")


if __name__ == "__main__":
    main()
