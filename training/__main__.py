import os

# implicit and numpy scoring want single-threaded BLAS (implicit warns of a 10x slowdown);
# this must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from training.cli import main

main()
