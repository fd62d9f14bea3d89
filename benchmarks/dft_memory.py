"""Where the DFT's resident memory goes (issue 19): RSS sampled every 2 ms through one run, with
the phases marked, and the floor that the libraries set before any calculation.

``phases``: one densitylab run (6-31G, grid level 3, def2-universal-jkfit DF on the device, the
grid as ``--xc-grid`` says) with the RSS at the end of each phase (grid, AO values, DF tensor,
system, initial guess, minimisation) and the largest RSS since the phase before. Run it twice
with the same ``DENSITYLAB_JAX_CACHE``: the first run compiles (LLVM's memory), the second loads
the stored executables, as a warm run does.

``floor``: the RSS after each import (PySCF, JAX, densitylab's DFT), after JAX's client starts,
and after the first stored executable is loaded (XLA's loader links its object code with LLVM),
each step in this one process.

Run:  python benchmarks/dft_memory.py phases MOLECULE XC [--xc-grid stored|streamed|auto]
      python benchmarks/dft_memory.py floor
Prints one line per phase (MiB).
"""

from __future__ import annotations

import argparse
import bisect
import threading
import time
import warnings
from pathlib import Path

MOLECULES = Path(__file__).parent / "molecules"
PHASES = ("build_grid", "ao_on_grid", "density_fitting_factor", "build_system", "initial_guess", "minimise")


def rss_mib() -> tuple[float, float]:
    """(resident, anonymous) MiB of this process."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts[0] in ("Rss:", "Anonymous:"):
            fields[parts[0]] = int(parts[1]) / 1024
    return fields["Rss:"], fields["Anonymous:"]


def floor() -> None:
    import numpy as np

    def show(what: str) -> None:
        resident, anonymous = rss_mib()
        print(f"{what:44s} RSS {resident:6.1f} MiB (anonymous {anonymous:6.1f})", flush=True)

    import pyscf.dft  # noqa: F401

    show("import pyscf.dft")
    import jax

    show("import jax")
    from densitylab.dft import run, system  # noqa: F401
    from densitylab.jaxsetup import jax_numpy

    jax_numpy()
    show("import densitylab.dft (jax_numpy)")
    jax.devices()
    show("JAX's CPU client")
    from densitylab.dft import compiled

    system.device_zeros((3,)).block_until_ready()
    show(f"first executable ({compiled.loads()} loaded, {compiled.compilations()} compiled)")
    jax.device_put(np.zeros(3)).block_until_ready()
    show("a host array on the device")


def phases(molecule: str, xc: str, xc_grid: str) -> None:
    warnings.filterwarnings("ignore")
    samples: list[tuple[float, float]] = []
    marks: list[tuple[float, str]] = []

    def sample() -> None:
        while True:
            samples.append((time.perf_counter(), rss_mib()[0]))
            time.sleep(0.002)

    from densitylab.jaxsetup import jax_numpy

    jax_numpy()
    from densitylab.dft import optimise, run, system
    from densitylab.dft.system import DFTSettings

    def marked(module, name):
        function = getattr(module, name)

        def wrapper(*args, **kwargs):
            result = function(*args, **kwargs)
            marks.append((time.perf_counter(), name))
            return result

        setattr(module, name, wrapper)

    for name in PHASES:
        marked(optimise if name in ("initial_guess", "minimise") else system, name)
    run.build_system, run.minimise = system.build_system, optimise.minimise  # imported by name
    threading.Thread(target=sample, daemon=True).start()
    time.sleep(0.05)
    started = time.perf_counter()
    marks.append((started, "start (libraries imported)"))
    settings = DFTSettings(xc=xc, xc_grid=xc_grid, df_storage="device")
    run.run_dft(MOLECULES / f"{molecule}.xyz", xc=xc, spin=0, settings=settings)
    marks.append((time.perf_counter(), "end"))
    time.sleep(0.05)
    times = [t for t, _ in samples]
    previous = started
    for when, name in sorted(marks):
        window = [value for t, value in samples if previous <= t <= when] or [0.0]
        now = samples[min(bisect.bisect(times, when), len(samples) - 1)][1]
        largest = max(window)
        print(f"{when - started:7.3f} s  {name:28s} RSS {now:7.1f} MiB  largest since then {largest:7.1f}")
        previous = when
    print(f"peak {max(value for _, value in samples):.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["phases", "floor"])
    parser.add_argument("molecule", nargs="?", default="h2o")
    parser.add_argument("xc", nargs="?", default="pbe")
    parser.add_argument("--xc-grid", default="stored", choices=["auto", "stored", "streamed"])
    args = parser.parse_args()
    if args.mode == "floor":
        floor()
    else:
        phases(args.molecule, args.xc, args.xc_grid)


if __name__ == "__main__":
    main()
