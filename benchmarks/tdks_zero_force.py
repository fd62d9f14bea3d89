"""The zero-force theorem as a constraint on a learned v_c, tried on the shipped functionals.

The exact v_c exerts no net force on the density: ∫ n ∂ₓv_xc dx = 0 (Vignale, PRL 74, 3233
(1995)); for two electrons in one orbital v_x = −v_H/2 exerts none (Newton's third law), so
∫ n ∂ₓv_c dx = 0 too. For each functional and trajectory this prints

* the largest |F(t)| = |∫ n ∂ₓv_c dx| (Ha/bohr, every 20th step) along the functional's own
  propagation and on the exact densities (teacher-forced), and the same for the exact v_c of
  model (a) where the trajectory has one (NAME-values beside NAME.h5);
* max_t ∫|n_KS − n_exact| dx of the functional as it is and projected onto zero force,
  v_c − (F/N)(x − ⟨x⟩) (a uniform field that cancels F, zero at the centre of charge), and of
  exchange-only.

Run:  python benchmarks/tdks_zero_force.py NET[,NET...] TRAJECTORY.h5 [...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def net_force(densities, v_c, dx):
    """F (T,) = Σ_x n ∂ₓv_c dx with central differences."""
    return np.sum(densities * np.gradient(v_c, dx, axis=1), axis=1) * dx


def projected(dx):
    """The propagation model of a DensityNet with its net force removed."""
    from densitylab.jaxsetup import jax_modules

    _, jnp, _ = jax_modules()

    def model(params, window, k):
        v_c, density = params(window), window[-1]
        charge = jnp.sum(density) * dx
        force = jnp.sum(density * jnp.gradient(v_c, dx)) * dx
        x = dx * jnp.arange(density.shape[0])
        return v_c - force / charge * (x - jnp.sum(density * x) * dx / charge)

    return model


def main() -> None:
    from densitylab.jaxsetup import jax_modules
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.evaluate import exchange_only, read_values, run, shipped_or_path
    from densitylab.tdks.models import load_density_net
    from densitylab.tdks.propagation import density_errors, problem_from_trajectory, propagate
    from densitylab.tdks.supervised import windows

    jax, jnp, eqx = jax_modules()
    names = sys.argv[1].split(",")
    for path in map(Path, sys.argv[2:]):
        problem, target = problem_from_trajectory(load_trajectory(path))
        dx, every = problem.dx, np.arange(0, problem.steps, 20)
        anchor = np.max(density_errors(run(problem, exchange_only(problem))[0], target, dx))
        print(f"{path.name}: exchange-only {anchor:.3f}")
        values = path.with_name(path.stem + "-values")
        if values.exists():
            exact = np.asarray(read_values(values))[every]
            force = np.abs(net_force(target[every], exact, dx)).max()
            print(f"  exact v_c (a): max |F| on the exact densities {force:.4f}")
        for name in names:
            net = load_density_net(shipped_or_path(name)[1])
            memory = net.config.memory
            errors = {}
            for label, model in (("as it is", lambda p, w, k: p(w)), ("zero force", projected(dx))):
                densities = eqx.filter_jit(lambda p, m=model, q=problem, s=memory: propagate(q, m, p, s)[0])(
                    net
                )
                errors[label] = np.max(density_errors(np.asarray(densities), target, dx))
                if label == "as it is":
                    own = np.asarray(densities)
            forces = {}
            for label, source in (("own", own), ("exact", target)):
                v_c = np.asarray(jax.vmap(net)(jnp.asarray(windows(source, memory, every))))
                forces[label] = np.abs(net_force(source[every], v_c, dx)).max()
            print(
                f"  {name}: max |F| own {forces['own']:.4f}, on exact densities {forces['exact']:.4f}; "
                f"error as it is {errors['as it is']:.3f}, zero force {errors['zero force']:.3f}"
            )


if __name__ == "__main__":
    main()
