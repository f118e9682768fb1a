"""Install size of translate: the distributions ``pip install -e ".[EXTRAS]"`` installs (the
transitive closure of translate's requirements, with the given extras), summed from each
installed distribution's file list (``importlib.metadata``), largest first, and the share that
only PyTorch's CUDA build brings (``nvidia-*``, ``cuda-*``, ``triton``): what a CPU-only install
(torch from https://download.pytorch.org/whl/cpu, see the README) does without.

    python benchmarks/install_size.py                 # the plain install
    python benchmarks/install_size.py --extras dev,serve --top 15

Sizes are of the installed files (what the venv holds), not of the downloads; the editable
checkout itself and pip's cache are not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement

CUDA_ONLY = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str, extras: set[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``root[extras]`` needs, recursively (markers evaluated)."""
    found: dict[str, metadata.Distribution] = {}
    todo = [(root, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed here (a marker for another platform, an optional extra)
        key = canonical(dist.metadata["Name"])
        first = key not in found
        found[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            env = default_environment()
            hits = [e for e in wanted] or [""]
            if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in hits):
                continue
            if first or wanted:
                todo.append((req.name, frozenset(req.extras)))
    return found


def size(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        with contextlib.suppress(OSError):
            total += dist.locate_file(f).stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", default="", help="comma-separated extras, e.g. dev,serve")
    parser.add_argument("--top", type=int, default=10, help="largest distributions to list")
    args = parser.parse_args()
    extras = {e for e in args.extras.split(",") if e}
    dists = closure("translate", extras)
    sizes = sorted(((size(d), k) for k, d in dists.items() if k != "translate"), reverse=True)
    total = sum(s for s, _ in sizes)
    cuda = sum(s for s, k in sizes if CUDA_ONLY.match(k))
    label = f"translate[{args.extras}]" if extras else "translate"
    print(f"{label}: {len(sizes)} distributions, {total / 1e9:.2f} GB installed")
    for s, k in sizes[: args.top]:
        print(f"  {s / 1e6:9.1f} MB  {k}")
    print(
        f"CUDA-only libraries (nvidia-*, cuda-*, triton): {cuda / 1e9:.2f} GB; "
        f"without them: {(total - cuda) / 1e9:.2f} GB "
        "(+ the CPU torch wheel instead of the CUDA one)"
    )


if __name__ == "__main__":
    main()
