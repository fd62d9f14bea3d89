"""The DFT's XC backward pass: JAX's VJP of the grid density against the adjoint
(``energy.grid_density_adjoint``, the XC potential matrix built by one GEMM per chunk), on the
real stored AO values of benchmark molecules (6-31G, grid level 3), orbitals from PySCF's
minimal-basis guess. Both give ∂E_xc/∂C for the same grid cotangent; the script checks that
they agree and times each (median of ``--repeats`` calls, compiled first).

Run:  python benchmarks/dft_backward.py [--molecules h2o ch4 benzene n-decane] [--repeats 10]
Prints one JSON line per molecule and functional family.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from dft_stages import median_ms

MOLECULES = Path(__file__).parent / "molecules"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--molecules", nargs="+", default=["h2o", "ch4", "benzene", "n-decane"])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    from pyscf.scf import hf

    from densitylab.dft.energy import grid_density, grid_density_adjoint
    from densitylab.dft.molecule import load_molecule
    from densitylab.dft.system import ao_on_grid, build_grid
    from densitylab.jaxsetup import jax_numpy

    jax, jnp = jax_numpy()
    for name in args.molecules:
        mol = load_molecule(MOLECULES / f"{name}.xyz")
        grids = build_grid(mol, 3)
        density = hf.init_guess_by_minao(mol)
        values, vectors = np.linalg.eigh(density)
        orbitals = jnp.asarray(vectors[:, -mol.nelec[0] :] * np.sqrt(np.abs(values[-mol.nelec[0] :]) / 2))
        for family, gradient in (("lda", False), ("gga", True)):
            ao_values = ao_on_grid(mol, np.asarray(grids.coords), gradient)
            ncomp = ao_values.shape[1]
            points = ao_values.shape[0] * ao_values.shape[2]  # the padded grid
            cotangent = jnp.asarray(np.random.default_rng(0).normal(size=(ncomp, points)))

            @jax.jit
            def vjp(c, ao, cot):
                return jax.vjp(lambda x: grid_density(jnp, ao, x), c)[1](cot)[0]

            @jax.jit
            def adjoint(c, ao, cot):
                return 2.0 * grid_density_adjoint(jnp, ao, cot) @ c

            arguments = (orbitals, ao_values, cotangent)
            difference = float(jnp.max(jnp.abs(vjp(*arguments) - adjoint(*arguments))))
            scale = float(jnp.max(jnp.abs(vjp(*arguments))))
            record = {"molecule": name, "family": family, "nao": mol.nao_nr(), "occupied": mol.nelec[0]}
            record["grid_points"] = len(grids.weights)
            for label, function in (("vjp_ms", vjp), ("adjoint_ms", adjoint)):
                call = lambda f=function, a=arguments: f(*a).block_until_ready()  # noqa: E731
                record[label] = median_ms(call, args.repeats)
            record["relative_difference"] = difference / scale
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
