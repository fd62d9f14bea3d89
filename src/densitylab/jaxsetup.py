"""JAX, imported lazily with 64-bit floats enabled (so ``import densitylab`` stays light), and
the folder format every trained Equinox model uses: ``config.json`` + ``weights.eqx``."""

from __future__ import annotations

import json
from pathlib import Path

from densitylab.errors import require


def jax_modules():
    """(jax, jax.numpy, equinox) with ``jax_enable_x64`` set."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import jax.numpy as jnp

    return jax, jnp, eqx


def save_module(path: str | Path, config: dict, module) -> Path:
    """Write ``config`` to PATH/config.json and the module's arrays to PATH/weights.eqx."""
    _, _, eqx = jax_modules()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=1))
    eqx.tree_serialise_leaves(path / "weights.eqx", module)
    return path


def read_module_config(path: str | Path, written_by: str) -> dict:
    """The config.json of a model folder; a clear error naming ``written_by`` if it is not one."""
    path = Path(path)
    require(
        (path / "config.json").is_file() and (path / "weights.eqx").is_file(),
        "model",
        f"a folder with config.json and weights.eqx written by {written_by}",
        str(path),
    )
    return json.loads((path / "config.json").read_text())


def load_weights(path: str | Path, skeleton):
    """``skeleton`` (a freshly built module of the right shape) with the weights of PATH."""
    _, _, eqx = jax_modules()
    return eqx.tree_deserialise_leaves(Path(path) / "weights.eqx", skeleton)
