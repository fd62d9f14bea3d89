"""Shapes rounded up to buckets (issue 19): the padded problem has the real one's energy and
gradient, and molecules of other compositions in the same bucket reuse compiled code."""

import json

import numpy as np
import pytest
from ase.build import molecule as ase_molecule
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from densitylab import limits
from densitylab.cli import app
from densitylab.dft import compiled
from densitylab.dft.buckets import STEPS_PER_OCTAVE, Padding, bucket
from densitylab.dft.evaluator import Evaluator
from densitylab.dft.molecule import load_molecule
from densitylab.dft.run import run_dft
from densitylab.dft.system import (
    DEFAULT_AUXBASIS,
    DFTSettings,
    auxiliary_molecule,
    build_system,
    df_tensor_bytes,
    stored_ao_bytes,
)
from densitylab.errors import InvalidParameterError


@settings(max_examples=300, deadline=None)
@given(size=st.integers(0, 10**6), minimum=st.sampled_from([1, 2, 8, 32, 1024]))
def test_a_bucket_holds_the_size_within_one_step_and_is_its_own_bucket(size, minimum):
    """Catches a ladder that shrinks a size, pads by more than a step (1/8 of the size's leading
    power of two, or the minimum step), or maps a bucket to another (shapes would not settle)."""
    padded = bucket(size, minimum)
    step = max(minimum, (1 << max(size.bit_length() - 1, 0)) // STEPS_PER_OCTAVE)
    assert size <= padded < size + step or size == padded == 0
    assert bucket(padded, minimum) == padded
    assert bucket(size + 1, minimum) >= padded


def _orbitals_density(transform, parameters):
    orbitals = transform @ np.linalg.qr(parameters)[0]
    return orbitals @ orbitals.T


def test_the_padded_chart_point_has_the_real_density():
    """Catches ghost orbitals that carry density or real ones that leak into ghost functions:
    the padded chart point W_b = U_b,occ + U_b,vir κ_b, through QR and the padded X, gives the
    density matrix of the real point (zero on the ghost functions), for a nearly dependent
    basis (nmo < nao) and a spin whose count is padded."""
    rng = np.random.default_rng(0)
    nao, nmo, counts = 11, 10, (5, 3)
    padding = Padding.of(nao, nmo, counts, 0, 0)
    assert padding.padded_counts == (6, 4) and padding.padded_nao - nmo >= 1
    transform = rng.normal(size=(nao, nmo))
    bases = [np.linalg.qr(rng.normal(size=(nmo, nmo)))[0] for _ in counts]
    kappa = rng.normal(scale=0.3, size=sum((nmo - n) * n for n in counts))
    padded_kappa, padded_bases = padding.pad("chart", (0, 1), kappa, bases)
    padded_transform = padding.matrix(transform)
    offset, padded_offset = 0, 0
    for spin, n in enumerate(counts):
        p, size = padding.padded_counts[spin], padding.padded_nao
        block = kappa[offset : offset + (nmo - n) * n].reshape(nmo - n, n)
        real = _orbitals_density(transform, bases[spin][:, :n] + bases[spin][:, n:] @ block)
        padded_block = padded_kappa[padded_offset : padded_offset + (size - p) * p].reshape(size - p, p)
        basis = padded_bases[spin]
        padded = _orbitals_density(padded_transform, basis[:, :p] + basis[:, p:] @ padded_block)
        assert np.allclose(basis.T @ basis, np.eye(size))
        assert np.allclose(padded[:nao, :nao], real, atol=1e-13) and np.allclose(padded[nao:], 0.0)
        offset, padded_offset = offset + (nmo - n) * n, padded_offset + (size - p) * p


@pytest.mark.parametrize(
    ("name", "xc", "spin", "basis"),
    [("H2O", "lda,vwn", 0, "6-31g"), ("CH2_s3B1d", "pbe", 2, "6-31g"), ("CH3CH2OH", "b3lyp", 0, "sto-3g")],
)
def test_a_bucketed_run_lands_on_the_unbucketed_energy(name, xc, spin, basis):
    """Catches padding the energy can see (ghost density, ghost Coulomb or exchange, XC on ghost
    points) or a gradient block taken from the wrong place: RKS LDA, UKS GGA with unequal
    counts (both padded) and a hybrid give the unbucketed energy to 1e-10 Ha in as many
    iterations, with every shape padded."""
    reports = [
        run_dft(ase_molecule(name), basis=basis, xc=xc, spin=spin,
                settings=DFTSettings(xc=xc, grid_level=1, shape_buckets=bucketed))
        for bucketed in (False, True)
    ]  # fmt: skip
    plain, padded = reports
    assert plain.padding is None and padded.padding.padded_nao > padded.padding.nao
    assert padded.result.converged and padded.result.iterations == plain.result.iterations
    assert padded.result.energy == pytest.approx(plain.result.energy, abs=1e-10)
    assert np.allclose(padded.result.mo_energy, plain.result.mo_energy, atol=1e-7)


def test_free_parameters_have_the_same_energy_and_gradient_bucketed():
    """Catches a parameters-kind padding (Adam, D4FT's setting) whose gradient differs: at a
    random, non-orthonormal W (both spins of a UKS radical), the bucketed evaluator gives the
    unbucketed energy and ∂E/∂W. (Whole Adam runs are not compared: Adam divides each
    component by its own magnitude, so rounding-level components of zero gradient take
    full steps of either sign.)"""
    mol = load_molecule(ase_molecule("OH"), basis="sto-3g", spin=1)
    rng = np.random.default_rng(1)
    parameters = [rng.normal(size=(mol.nao_nr(), n)) for n in mol.nelec]
    results = []
    for bucketed in (False, True):
        system = build_system(mol, DFTSettings(xc="pbe", grid_level=0, shape_buckets=bucketed))
        stages = Evaluator(system)
        results.append(stages.parameter_value_and_grad([np.array(w) for w in parameters], stages.ops))
    (plain_energy, plain_gradient), (energy, gradient) = results
    assert energy == pytest.approx(plain_energy, abs=1e-10)
    for g, h in zip(gradient, plain_gradient, strict=True):
        assert np.allclose(np.asarray(g), np.asarray(h), rtol=0, atol=1e-9)


def _executables_obtained() -> int:
    """Executables this process compiled or loaded from the store: what a run needed that the
    in-process cache did not hold (a load alone, where the store already has the shapes from an
    earlier process, is still a miss of this process)."""
    return compiled.compilations() + compiled.loads()


def test_another_composition_in_the_same_bucket_compiles_nothing():
    """Catches a compiled shape that still follows the composition (a grid, auxiliary or
    block width left unpadded): C3H4 after acetaldehyde (C2H4O; same buckets in STO-3G at grid
    level 1) needs no executable the process does not hold when bucketed, and lands on its own
    unbucketed energy; unbucketed it needs its own (compiled, or loaded where the persistent store
    has them from an earlier run)."""
    settings_bucketed = DFTSettings(xc="lda,vwn", grid_level=1, shape_buckets=True)
    run_dft(ase_molecule("CH3CHO"), basis="sto-3g", xc="lda,vwn", settings=settings_bucketed)
    before = _executables_obtained()
    bucketed = run_dft(ase_molecule("C3H4_C2v"), basis="sto-3g", xc="lda,vwn", settings=settings_bucketed)
    assert _executables_obtained() == before
    plain = run_dft(
        ase_molecule("C3H4_C2v"),
        basis="sto-3g",
        xc="lda,vwn",
        settings=DFTSettings(xc="lda,vwn", grid_level=1),
    )
    assert _executables_obtained() > before  # its own shapes: not held in the process
    assert bucketed.result.energy == pytest.approx(plain.result.energy, abs=1e-10)


@pytest.mark.parametrize("changes", [{"coulomb": "exact"}, {"xc_grid": "streamed"}, {"df_storage": "disk"}])
def test_buckets_outside_the_device_path_are_refused_by_name(changes):
    """Catches a setting that would pad where the host reads density matrices of the real size."""
    with pytest.raises(InvalidParameterError, match="shape_buckets: expected density fitting on the device"):
        DFTSettings(xc="pbe", shape_buckets=True, **changes)


def test_the_cli_runs_bucketed_and_reports_the_compiled_size(water_xyz):
    result = CliRunner().invoke(
        app,
        [
            "dft",
            str(water_xyz),
            "--xc",
            "lda,vwn",
            "--basis",
            "sto-3g",
            "--grid-level",
            "0",
            "--shape-buckets",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    plain = run_dft(water_xyz, basis="sto-3g", xc="lda,vwn", settings=DFTSettings(xc="lda,vwn", grid_level=0))
    assert summary["nao"] == 7 and summary["compiled_nao"] == 8
    assert summary["energy"] == pytest.approx(plain.result.energy, abs=1e-10)


def test_the_memory_check_counts_the_padded_arrays(monkeypatch):
    """Catches a size check made on the real shapes when the padded arrays are allocated: the
    padded estimate is what build_system allocates (B exactly, the AO values up to the chunks'
    64-point rounding), and with memory between the real and the padded need the bucketed
    system is refused before any allocation, while the unbucketed one is built."""
    mol = load_molecule(ase_molecule("H2O"), basis="sto-3g")
    system = build_system(mol, DFTSettings(xc="pbe", grid_level=3, xc_grid="stored", shape_buckets=True))
    auxmol = auxiliary_molecule(mol, DEFAULT_AUXBASIS)
    tensor, grid = system.padding.array_bytes(True)
    assert system.df_factor.nbytes == tensor
    assert grid <= system.ao_values.nbytes <= grid + 8 * 64 * system.ao_values.shape[0] * 4 * 8
    real = df_tensor_bytes(mol, auxmol) + stored_ao_bytes(system.ngrid, mol.nao_nr(), True)
    assert tensor + grid > 1.1 * real
    monkeypatch.setattr(limits, "available_memory", lambda: 0.5 * (real + tensor + grid))
    build_system(mol, DFTSettings(xc="pbe", grid_level=3, xc_grid="stored"))
    with pytest.raises(InvalidParameterError, match="molecule: expected a size that fits in memory"):
        build_system(mol, DFTSettings(xc="pbe", grid_level=3, xc_grid="stored", shape_buckets=True))
