"""JAX, imported lazily with 64-bit floats enabled (so ``import densitylab`` stays light)."""

from __future__ import annotations


def jax_modules():
    """(jax, jax.numpy, equinox) with ``jax_enable_x64`` set."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import jax.numpy as jnp

    return jax, jnp, eqx
