"""JAX, imported lazily with 64-bit floats enabled (so ``import densitylab`` stays light), and
the artefact folder every trained Equinox model uses: ``manifest.json`` + ``weights.eqx``.

64-bit floats: every function that needs JAX obtains it through :func:`jax_modules`, which
sets ``jax_enable_x64`` before handing JAX out. densitylab never changes it at import, so a
program that imports densitylab and uses JAX for itself keeps its own setting until it calls
a densitylab function that runs JAX code; from then on x64 is on for the process (JAX has one
global switch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from densitylab.artefacts import artefact_folder, read_manifest, write_manifest
from densitylab.errors import require


def jax_modules():
    """(jax, jax.numpy, equinox) with ``jax_enable_x64`` set."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import jax.numpy as jnp

    return jax, jnp, eqx


def save_module(
    path: str | Path,
    kind: str,
    config: dict,
    module,
    extra_files: Callable[[Path], None] | None = None,
    **manifest: object,
) -> Path:
    """Write an Equinox model as an artefact folder (:mod:`densitylab.artefacts`):
    ``manifest.json`` (``kind``, ``config`` and the ``manifest`` keys) and ``weights.eqx``;
    ``extra_files(folder)`` may add files. The folder appears whole or not at all."""
    _, _, eqx = jax_modules()
    with artefact_folder(path) as folder:
        eqx.tree_serialise_leaves(folder / "weights.eqx", module)
        if extra_files is not None:
            extra_files(folder)
        write_manifest(folder, kind, config, seed=config.get("seed"), **manifest)
    return Path(path)


def read_module_config(path: str | Path, kinds: tuple[str, ...], fields: Iterable[str]) -> dict:
    """The config of an Equinox model folder of one of ``kinds``, restricted to ``fields``
    (the config dataclass's); a clear error naming what was expected otherwise."""
    manifest = read_manifest(path, kinds)
    require((Path(path) / "weights.eqx").is_file(), "model", "a model folder with weights.eqx", str(path))
    fields = set(fields)
    return {key: value for key, value in manifest["config"].items() if key in fields}


def load_weights(path: str | Path, skeleton):
    """``skeleton`` (a freshly built module of the right shape) with the weights of PATH."""
    _, _, eqx = jax_modules()
    return eqx.tree_deserialise_leaves(Path(path) / "weights.eqx", skeleton)
