"""How much a functional's v_c depends on where the box's walls are, with the density far from them.

The initial density of e + H scattering (H at −10, the packet at +10; p only sets the phase) on
the training box [−80, 40] and on boxes cut or widened around it, at dx = 0.1. Each
functional's v_c (its window: the same density repeated) is compared on the points the boxes
share, less a constant (which moves no density), within 5 bohr of the density (n > 1e-6).
For each functional the original network and its ``wall_free`` twin (the same weights, edge
padding, the electron count from the density's centre) are measured.

Run:  python benchmarks/tdks_walls.py [NET ...]   (default: the shipped functionals)
Prints one line per functional and box: max |Δv_c| (Ha), gauge removed.
"""

from __future__ import annotations

import sys

import numpy as np

BOXES = ((-80.0, 40.0), (-30.0, 25.0), (-45.0, 60.0), (-120.0, 40.0))


def v_c_on(net, box):
    import jax.numpy as jnp

    from densitylab.model1d.propagation import density_and_current, scattering_scenario

    scenario = scattering_scenario(momentum=-1.0, dx=0.1, x_min=box[0], x_max=box[1], stencil=3)
    density, _ = density_and_current(scenario.psi0, scenario.grid)
    window = jnp.stack([jnp.asarray(density)] * net.config.memory)
    return scenario.grid.x, density, np.asarray(net(window))


def main() -> None:

    from densitylab.jaxsetup import jax_modules
    from densitylab.tdks.evaluate import shipped_or_path
    from densitylab.tdks.models import load_density_net, with_config

    jax_modules()
    names = sys.argv[1:] or ["scattering-memory", "scattering-dagger"]
    for name in names:
        net = load_density_net(shipped_or_path(name)[1])
        twins = {"as trained": net}
        if not net.config.wall_free:
            twins["wall_free twin"] = with_config(net, wall_free=True)
        for label, model in twins.items():
            x0, n0, v0 = v_c_on(model, BOXES[0])
            for box in BOXES[1:]:
                x, _, v = v_c_on(model, box)
                low, high = max(x0[0], x[0]), min(x0[-1], x[-1])
                mine = (x0 > low - 1e-9) & (x0 < high + 1e-9)
                theirs = (x > low - 1e-9) & (x < high + 1e-9)
                near = np.convolve(n0[mine] > 1e-6, np.ones(101), mode="same") > 0  # within 5 bohr
                difference = (v[theirs] - v0[mine])[near]
                difference -= np.mean(difference)
                print(f"{name:20s} {label:15s} box {box}: max |Δv_c| = {np.abs(difference).max():.2e} Ha")


if __name__ == "__main__":
    main()
