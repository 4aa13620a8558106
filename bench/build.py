"""Build benchmark: the whole `training build` against a plain implicit ALS fit, same data, same run.

Data: synthetic, shaped like MovieLens 25M (bench/synthetic.py), generated once and cached.
Baseline: implicit's AlternatingLeastSquares, 64 factors, 15 iterations, its defaults
otherwise, on the same user x movie matrix of ratings (implicit reads the values as
confidences), fit only (loading excluded), in a child process. Then the full build (load,
models, tables, bundle) in another child process. Prints both wall times, their ratio, the
build's stage timings and peak memory, and the CSV loading time.

The same fit on the matrix with every value set to 1 is timed too, and its ratio printed. It
is not the target's baseline: with every confidence exactly 1 an observed cell weighs no more
than an unobserved one, and implicit's conjugate-gradient steps multiply each rated movie's
factors by (confidence - 1) = 0, an axpy that BLAS returns from at once, so that fit skips
three of the four vector updates per rating that a fit on real confidences (the build's, or
the ratings') makes.

    .venv/bin/python -m bench.build                       # full size (~20M ratings)
    .venv/bin/python -m bench.build --ratings 2000000     # quicker, smaller
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.synthetic import MOVIES, RATINGS, USERS, generate

BASELINE = """
import os, sys, time, resource
os.environ["OPENBLAS_NUM_THREADS"] = "1"
from training.datasets import load_dataset
from training.interactions import IdIndex, user_item_matrix
t = time.perf_counter()
data = load_dataset(sys.argv[1])
load_s = time.perf_counter() - t
matrix = user_item_matrix(data.ratings, IdIndex.of(data.ratings.user_id), IdIndex.of(data.movies.movie_id))
if sys.argv[3] == "binary":
    matrix.data[:] = 1.0
from implicit.als import AlternatingLeastSquares
model = AlternatingLeastSquares(factors=64, iterations=15, random_state=0, use_gpu=sys.argv[2] == "gpu")
t = time.perf_counter()
model.fit(matrix, show_progress=False)
fit_s = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{load_s:.3f} {fit_s:.3f} {rss:.1f} {matrix.nnz}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ratings", type=int, default=RATINGS)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--movies", type=int, default=MOVIES)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cinerec-bench")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="ALS device for both runs")
    args = parser.parse_args()

    data = args.cache / f"synthetic-{args.users}u-{args.movies}m-{args.ratings}r"
    if not (data / "ratings.csv").is_file():
        started = time.perf_counter()
        generate(data, args.users, args.movies, args.ratings)
        print(f"generated {data} in {time.perf_counter() - started:.1f}s")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parent.parent

    def baseline(values: str) -> tuple[float, float, float, int]:
        out = subprocess.run(
            [sys.executable, "-c", BASELINE, str(data), args.device, values],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=root,
        ).stdout.split()
        return float(out[0]), float(out[1]), float(out[2]), int(out[3])

    load_s, fit_s, baseline_rss, nnz = baseline("ratings")
    print(f"data: {nnz:,} ratings, {args.users:,} users, {args.movies:,} movies")
    print(f"load (pyarrow CSV -> canonical frames): {load_s:.1f}s")
    print(
        f"baseline: implicit ALS fit on {args.device}, 64 factors, 15 iterations, on the ratings: "
        f"{fit_s:.1f}s (peak {baseline_rss:,.0f} MiB)"
    )
    binary_s = baseline("binary")[1]
    print(f"the same fit on the matrix with every value 1 (not the baseline, see above): {binary_s:.1f}s")

    # numba compiles the rating model's kernel once per install and caches it; compile it
    # here so the timed build is the one every later build is, and say what it cost.
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "training.jit"], check=True, env=env, cwd=root)
    compile_s = time.perf_counter() - started
    print(f"one-off numba compile of the kernels (cached for later builds): {compile_s:.1f}s")

    with tempfile.TemporaryDirectory() as artifacts:
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "training",
                "build",
                "--data",
                str(data),
                "--out",
                artifacts,
                "--device",
                args.device,
            ],
            check=True,
            env=env,
            cwd=root,
            stdout=subprocess.DEVNULL,
        )
        build_s = time.perf_counter() - started
        manifest = json.loads((Path(artifacts) / "current" / "manifest.json").read_text())
    print(f"build (whole pipeline, CLI): {build_s:.1f}s (peak {manifest['peak_rss_mb']:,.0f} MiB)")
    print(f"  stages: {manifest['timings_s']}")
    target = 3.0 if args.device == "gpu" else 2.0
    print(f"ratio build / baseline fit: {build_s / fit_s:.2f} (target <= {target}; peak memory < 8192 MiB)")
    print(f"ratio build / the fit on values 1: {build_s / binary_s:.2f}")


if __name__ == "__main__":
    main()
