"""Suite-wide set-up: JAX in 64-bit before any test module makes an array.

The library turns 64-bit on when it first uses JAX (``densitylab.jaxsetup.jax_modules``), but
a test that builds ``jnp`` inputs before its first library call would otherwise get float32
arrays when it happens to run first (one did: a 1e-9 comparison failed alone and passed in
the suite).
"""

from densitylab.jaxsetup import jax_modules

jax_modules()


#: The files that take longest with a cold compilation cache (BENCHMARKS.md, "Test suite"),
#: handed out first: pytest-xdist's ``--dist loadfile`` gives whole files to the two test
#: processes in collection order, so a long file collected last runs alone at the end.
LONGEST_FIRST = (
    "tests/test_cli.py",
    "tests/dft/test_orbitals.py",
    "tests/tdks/test_functional.py",
    "tests/tdks/test_tdks.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(LONGEST_FIRST)))
