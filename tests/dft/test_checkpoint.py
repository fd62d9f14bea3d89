"""A DFT minimisation checkpointed and resumed (issue 19: long runs such as C60 lose no work)."""

import warnings

import numpy as np
import pytest
from ase.build import molecule as ase_molecule

from densitylab.dft import run as run_module
from densitylab.dft.optimise import OptimiserSettings
from densitylab.dft.run import run_dft
from densitylab.dft.system import DFTSettings
from densitylab.errors import InvalidParameterError

warnings.filterwarnings("ignore", message="Basis may be available")


def test_an_interrupted_minimisation_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Catches a checkpoint that is not written, not read, or holds another point than the one
    reached (a resume would start over or somewhere else): cut after 4 L-BFGS evaluations, the
    rerun starts from the checkpointed density, converges in fewer evaluations than a fresh
    run and lands on its energy (1e-8 Ha). Another functional or geometry is refused naming
    the checkpoint, before any work."""
    monkeypatch.setattr(run_module, "CHECKPOINT_SECONDS", 0.0)
    path = tmp_path / "water.checkpoint.npz"
    water, settings = ase_molecule("H2O"), DFTSettings(grid_level=1)
    fresh = run_dft(water, xc="pbe", settings=settings)
    first = run_dft(
        water, xc="pbe", settings=settings, optimiser=OptimiserSettings(max_iterations=4), checkpoint=path
    )
    assert not first.result.converged and path.is_file()
    resumed = run_dft(water, xc="pbe", settings=settings, checkpoint=path)
    assert fresh.result.converged and resumed.result.converged
    assert resumed.result.iterations < fresh.result.iterations
    assert resumed.result.energy == pytest.approx(fresh.result.energy, abs=1e-8)
    assert resumed.result.history[0]["energy"] < fresh.result.history[0]["energy"] - 1e-4
    with pytest.raises(InvalidParameterError, match="checkpoint"):
        run_dft(water, xc="lda,vwn", settings=settings, checkpoint=path)
    with pytest.raises(InvalidParameterError, match="checkpoint: expected a path in an existing folder"):
        run_dft(water, xc="pbe", settings=settings, checkpoint=tmp_path / "missing" / "water.npz")
    moved = water.copy()
    moved.positions[0] += np.array([0.0, 0.0, 0.05])
    with pytest.raises(InvalidParameterError, match="checkpoint"):
        run_dft(moved, xc="pbe", settings=settings, checkpoint=path)


def test_adam_checkpoints_the_point_it_reached(tmp_path, monkeypatch):
    """Catches Adam's snapshot taken from the wrong parameters (the start, or a spin's): after 40
    steps the checkpointed density, evaluated by a resumed run's first step, has the energy the
    run had reached (1e-3 Ha), far below the fresh start's."""
    monkeypatch.setattr(run_module, "CHECKPOINT_SECONDS", 0.0)
    path = tmp_path / "water.checkpoint.npz"
    water, settings = ase_molecule("H2O"), DFTSettings(grid_level=1)
    adam_40, adam_1 = (OptimiserSettings(method="adam", max_iterations=n) for n in (40, 1))
    first = run_dft(water, xc="pbe", settings=settings, optimiser=adam_40, checkpoint=path)
    resumed = run_dft(water, xc="pbe", settings=settings, optimiser=adam_1, checkpoint=path)
    reached, start = first.result.history[-1]["energy"], first.result.history[0]["energy"]
    assert resumed.result.history[0]["energy"] == pytest.approx(reached, abs=1e-3)
    assert start - reached > 1e-2


def test_a_bucketed_run_resumes_an_unbucketed_checkpoint(tmp_path, monkeypatch):
    """Catches shape buckets counted among the checkpoint's settings (they change no number)
    or a saved density of the real size fed to the padded problem unembedded: cut after 4
    unbucketed evaluations, the bucketed rerun starts from the checkpoint (its first energy far
    below a fresh start's) and lands on the fresh energy (1e-8 Ha)."""
    monkeypatch.setattr(run_module, "CHECKPOINT_SECONDS", 0.0)
    path = tmp_path / "water.checkpoint.npz"
    water, plain = ase_molecule("H2O"), DFTSettings(grid_level=1)
    bucketed = DFTSettings(grid_level=1, shape_buckets=True)
    fresh = run_dft(water, xc="pbe", settings=plain)
    run_dft(water, xc="pbe", settings=plain, optimiser=OptimiserSettings(max_iterations=4), checkpoint=path)
    resumed = run_dft(water, xc="pbe", settings=bucketed, checkpoint=path)
    assert resumed.padding is not None and resumed.result.converged
    assert resumed.result.energy == pytest.approx(fresh.result.energy, abs=1e-8)
    assert resumed.result.history[0]["energy"] < fresh.result.history[0]["energy"] - 1e-4
