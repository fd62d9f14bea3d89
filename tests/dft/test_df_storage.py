"""The DF tensor kept by PySCF on disk (``df_storage="disk"``, issue 19): J and K built on the
host, one energy with the device's."""

import warnings

import numpy as np
import pytest
from ase.build import molecule as ase_molecule

from densitylab.dft import system as system_module
from densitylab.dft.evaluator import Evaluator
from densitylab.dft.molecule import load_molecule
from densitylab.dft.optimise import OptimiserSettings
from densitylab.dft.run import run_dft
from densitylab.dft.system import DFTSettings, build_system
from densitylab.errors import InvalidParameterError

warnings.filterwarnings("ignore", message="Basis may be available")


@pytest.mark.parametrize(
    ("xc", "spin", "name"),
    [("lda,vwn", 0, "H2O"), ("pbe", 2, "O2"), ("b3lyp", 0, "NH3"), ("b3lyp", 2, "O2"), ("hf", 0, "H2O")],
)
def test_the_tensor_on_disk_gives_the_device_energy_and_fock_matrices(monkeypatch, xc, spin, name):
    """Catches host J/K with a wrong factor or spin rule (the RKS exchange from D_α alone, ½ of
    J, K[D] for K[D_σ]), a J that ignores D_β, or a potential that is not the derivative of the
    host energy: at the same density matrices (a perturbed minao guess, D_α ≠ D_β) the energies,
    every term and the Fock matrices equal the device's to 1e-10; the tensor is in a file (the
    host's memory budget is cut to 10 kB here), not in memory."""
    from pyscf.scf import hf

    monkeypatch.setattr(system_module, "STREAM_MEMORY_MB", 0.01)
    mol = load_molecule(ase_molecule(name), spin=spin)
    guess = 0.5 * hf.init_guess_by_minao(mol)
    noise = 1e-3 * np.random.default_rng(0).normal(size=guess.shape)
    d_alpha, d_beta = guess + noise + noise.T, guess
    results = {}
    for storage in ("device", "disk"):
        system = build_system(mol, DFTSettings(xc=xc, grid_level=1, xc_grid="streamed", df_storage=storage))
        results[storage] = Evaluator(system).fock_of_density(d_alpha, d_beta)
        if storage == "disk":
            assert system.df_factor is None and not isinstance(system.host_df._cderi, np.ndarray)
    (energy, focks, terms), (disk_energy, disk_focks, disk_terms) = results["device"], results["disk"]
    assert disk_energy == pytest.approx(energy, abs=1e-10)
    for term in terms:
        assert disk_terms[term] == pytest.approx(terms[term], abs=1e-10), term
    np.testing.assert_allclose(np.array(disk_focks), np.array(focks), atol=1e-10)
    assert terms["coulomb"] > 1.0 and (terms["exact_exchange"] < -0.1) == (xc != "lda,vwn" and xc != "pbe")


def test_a_minimisation_with_the_tensor_on_disk_lands_on_the_device_energy():
    """Catches a host gradient that is not the derivative of the host energy (the L-BFGS would
    stall): water with B3LYP converges with the tensor on disk to the device's energy (1e-9 Ha)."""
    energies = {}
    for storage in ("device", "disk"):
        settings = DFTSettings(grid_level=1, xc_grid="streamed", df_storage=storage)
        report = run_dft(ase_molecule("H2O"), xc="b3lyp", settings=settings)
        assert report.result.converged and report.summary()["df_storage"] == storage
        energies[storage] = report.result.energy
    assert energies["disk"] == pytest.approx(energies["device"], abs=1e-9)


def test_the_tensor_on_disk_refuses_what_it_cannot_do_before_any_work(monkeypatch):
    """Catches a combination that would silently use the device tensor or fail late: exact
    Coulomb, a stored grid, grid minibatches and an unknown value are refused naming
    df_storage; a disk without room for the tensor is refused before it is built."""
    from densitylab import limits

    for bad in ({"coulomb": "exact"}, {"xc_grid": "stored"}):
        with pytest.raises(InvalidParameterError, match="df_storage"):
            DFTSettings(df_storage="disk", **bad)
    with pytest.raises(InvalidParameterError, match="df_storage"):
        DFTSettings(df_storage="ram")
    adam = OptimiserSettings(method="adam", minibatch=100, max_iterations=2)
    with pytest.raises(InvalidParameterError, match="df_storage"):
        run_dft(ase_molecule("H2O"), basis="sto-3g", settings=DFTSettings(df_storage="disk"), optimiser=adam)

    class Full:
        free = 0

    monkeypatch.setattr(limits.shutil, "disk_usage", lambda folder: Full)
    with pytest.raises(InvalidParameterError, match="df_storage: expected a size that fits on disk"):
        build_system(
            load_molecule(ase_molecule("H2O")), DFTSettings(xc="lda,vwn", grid_level=1, df_storage="disk")
        )


def test_auto_keeps_the_tensor_on_the_device_until_it_would_crowd_the_memory(monkeypatch):
    """Catches an "auto" that ignores the tensor's size (refusing or swapping a molecule that
    the disk would take) or sends small tensors to disk (slow for nothing): water's tensor stays
    on the device; with the free memory cut to 1.5× the tensor it goes to disk, the grid is
    streamed, and the energy is the device's (1e-9 Ha); a stored grid keeps it on the device."""
    water = ase_molecule("H2O")
    settings = DFTSettings(xc="pbe", grid_level=1)
    device = run_dft(water, xc="pbe", settings=settings)
    assert device.summary()["df_storage"] == "device"
    mol = load_molecule(water)
    tensor = system_module.df_tensor_bytes(mol, system_module.auxiliary_molecule(mol, settings.auxbasis))
    monkeypatch.setattr(system_module, "available_memory", lambda: 1.5 * tensor)
    disk = run_dft(water, xc="pbe", settings=settings)
    assert disk.summary()["df_storage"] == "disk" and disk.xc_grid == "streamed"
    assert disk.result.energy == pytest.approx(device.result.energy, abs=1e-9)
    stored = build_system(mol, DFTSettings(xc="pbe", grid_level=1, xc_grid="stored"))
    assert stored.settings.df_storage == "device"


def test_auto_uses_most_of_a_gpu_but_half_of_the_host(monkeypatch):
    """Catches a GPU run sent to disk by the host's rule (C160 fits on an H200 with 99.6 GB of
    tensor, 70 % of the card) or a host run that fills its memory: a tensor taking 70 % of the
    free memory stays on a GPU and goes to disk on the CPU; an explicit choice is kept."""
    settings = DFTSettings(xc="lda,vwn")
    monkeypatch.setattr(system_module, "available_memory", lambda: 100.0)
    assert system_module.df_storage_mode(settings, 70.0, None) == "disk"
    assert system_module.df_storage_mode(settings, 40.0, None) == "device"
    assert system_module.df_storage_mode(settings, 70.0, ("gpu", 100.0)) == "device"
    assert system_module.df_storage_mode(settings, 95.0, ("gpu", 100.0)) == "disk"
    assert (
        system_module.df_storage_mode(DFTSettings(xc="lda,vwn", df_storage="device"), 95.0, None) == "device"
    )


@pytest.mark.parametrize(
    ("xc", "spin", "xc_grid", "df_storage"),
    [
        ("lda,vwn", 0, "stored", "device"),
        ("pbe", 2, "stored", "device"),
        ("pbe", 0, "streamed", "device"),
        ("b3lyp", 2, "streamed", "disk"),
        ("lda,vwn", 0, "streamed", "disk"),
        ("hf", 0, "auto", "disk"),
        ("hf", 0, "auto", "device"),
    ],
)
def test_the_backward_stage_compiled_ahead_takes_what_the_host_reads(xc, spin, xc_grid, df_storage):
    """Catches the ahead-of-time shape of the backward stage's cotangent drifting from what the
    forward stage hands the host (the compiled-ahead stage would go unused and every run would
    compile again in the foreground): host_input_shape equals xc_input's shape, or both are None."""
    from densitylab.dft.energy import EnergyModel, host_input_shape, operands, xc_input

    mol = load_molecule(ase_molecule("O2" if spin else "H2O"), spin=spin)
    system = build_system(mol, DFTSettings(xc=xc, grid_level=1, xc_grid=xc_grid, df_storage=df_storage))
    model = EnergyModel.of(system)
    density = np.eye(system.nao) * 0.1
    handed = xc_input(model, operands(system), None, (density, density))
    nchunk, ncomp, chunk, nao = system.ao_values.shape
    expected = host_input_shape(model, ncomp, nchunk * chunk, nao)
    assert (None if handed is None else tuple(handed.shape)) == expected
