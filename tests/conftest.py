"""Suite-wide set-up: JAX in 64-bit before any test module makes an array.

The library turns 64-bit on when it first uses JAX (``densitylab.jaxsetup.jax_modules``), but
a test that builds ``jnp`` inputs before its first library call would otherwise get float32
arrays when it happens to run first (one did: a 1e-9 comparison failed alone and passed in
the suite).
"""

from densitylab.jaxsetup import jax_modules

jax_modules()
