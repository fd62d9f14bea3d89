"""Does SciPy's Cholesky factor a large SPD matrix here? (the OpenBLAS crash of densitylab.linalg)

Run:  python benchmarks/cholesky_threads.py N [U|L]      (one N per process: a crash ends it)
      OPENBLAS_NUM_THREADS=1 python benchmarks/cholesky_threads.py N
Prints "N ok SECONDS", or the process dies with a segmentation fault.
"""

import sys
import time

import numpy as np
import scipy.linalg

n = int(sys.argv[1])
lower = len(sys.argv) > 2 and sys.argv[2] == "L"
a = np.random.default_rng(0).normal(size=(n, 200))
matrix = a @ a.T
matrix.flat[:: n + 1] += 1.0
started = time.perf_counter()
scipy.linalg.cho_factor(matrix, lower=lower, overwrite_a=True, check_finite=False)
print(n, "ok", time.perf_counter() - started, flush=True)
