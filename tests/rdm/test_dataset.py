import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from densitylab.errors import InvalidParameterError
from densitylab.model1d import Grid, System, solve_exact
from densitylab.model1d.meanfield import solve_mean_field
from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset

SMALL = {"points": 24, "chunk_size": 4}


def test_dataset_contents_match_direct_model1d_solves(tmp_path):
    spec = DatasetSpec(systems=8, seed=5, **SMALL)
    generate_dataset(spec, tmp_path / "d.h5")
    data = load_dataset(tmp_path / "d.h5")
    grid = Grid(24, -7.5, 7.5)
    assert data.parameters["seed"] == 5 and len(data) == 8
    for index in (0, 6):
        # the potential, rebuilt independently from the documented recipe
        rng = np.random.default_rng([5, index])
        a, b = rng.uniform(-10, 10, 3), rng.uniform(-10, 10, 3)
        k = np.arange(1, 4)[:, None]
        v = 1e-11 * grid.x**10 + 0.1 * (
            a[:, None] * np.cos(k * np.pi * grid.x / 15) + b[:, None] * np.sin(k * np.pi * grid.x / 15)
        ).sum(axis=0)
        np.testing.assert_allclose(data.arrays["v_ext"][index], v, atol=1e-14)
        system = System(grid, v, "ud")
        exact = solve_exact(system).ground
        assert data.arrays["energy"][index] == pytest.approx(exact.energy, abs=1e-10)
        assert data.arrays["kinetic_energy"][index] == pytest.approx(exact.kinetic_energy, abs=1e-8)
        np.testing.assert_allclose(data.rdm1("exact")[index], exact.rdm1, atol=1e-7)
        np.testing.assert_allclose(
            data.arrays["natural_occupations"][index], exact.natural_occupations, atol=1e-7
        )
        uhf = solve_mean_field(system, "hartree-fock", restricted=False)
        assert data.arrays["uhf/energy"][index] == pytest.approx(uhf.energy, abs=1e-9)
        np.testing.assert_allclose(data.rdm1("uhf")[index], uhf.rdm1, atol=1e-6)
        free = solve_mean_field(system, "non-interacting")
        assert data.arrays["noninteracting/energy"][index] == pytest.approx(free.energy, abs=1e-10)
        np.testing.assert_allclose(data.rdm1("noninteracting")[index], free.rdm1, atol=1e-10)
    np.testing.assert_allclose(np.trace(data.rdm1("exact"), axis1=1, axis2=2) * data.dx, 2.0, atol=1e-10)


def test_interrupted_generation_resumes_without_recomputing(tmp_path):
    spec = DatasetSpec(systems=12, seed=1, **SMALL)
    calls = []

    def interrupt_after_first_chunk(done, total):
        calls.append(done)
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_dataset(spec, tmp_path / "d.h5", progress=interrupt_after_first_chunk)
    assert not (tmp_path / "d.h5").exists()
    summary = generate_dataset(spec, tmp_path / "d.h5")
    assert summary["resumed_chunks"] == 1 and summary["computed_chunks"] == 2
    generate_dataset(spec, tmp_path / "clean.h5")
    resumed, clean = load_dataset(tmp_path / "d.h5"), load_dataset(tmp_path / "clean.h5")
    for name in ("rdm1", "energy", "uhf/orbital_up", "noninteracting/density", "v_ext"):
        np.testing.assert_array_equal(resumed.arrays[name], clean.arrays[name])
    assert not (tmp_path / "d.h5.parts").exists()


def test_killed_command_loses_no_finished_chunk(tmp_path):
    output = tmp_path / "killed.h5"
    command = [
        sys.executable,
        "-m",
        "densitylab.cli",
        "rdm",
        "generate",
        "--output",
        str(output),
        "--systems",
        "400",
        "--points",
        "40",
        "--chunk-size",
        "20",
        "--workers",
        "1",
        "--json",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    parts = tmp_path / "killed.h5.parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("chunk-[0-9][0-9][0-9][0-9][0-9][0-9].npz"))) < 2:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list(parts.glob("chunk-[0-9][0-9][0-9][0-9][0-9][0-9].npz")))
    assert 2 <= finished < 20
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    summary = json.loads(result.stdout)
    assert (
        summary["resumed_chunks"] >= finished and summary["computed_chunks"] == 20 - summary["resumed_chunks"]
    )
    assert load_dataset(output).arrays["rdm1"].shape == (400, 40, 40)


def test_other_parameters_are_refused_rather_than_mixed(tmp_path):
    spec = DatasetSpec(systems=8, seed=1, **SMALL)

    def stop(done, total):
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_dataset(spec, tmp_path / "d.h5", progress=stop)
    with pytest.raises(InvalidParameterError, match="seed"):
        generate_dataset(DatasetSpec(systems=8, seed=2, **SMALL), tmp_path / "d.h5")
    generate_dataset(spec, tmp_path / "d.h5")
    with pytest.raises(InvalidParameterError, match="amplitude"):
        generate_dataset(DatasetSpec(systems=8, seed=1, amplitude=0.2, **SMALL), tmp_path / "d.h5")


def test_results_do_not_depend_on_the_number_of_workers(tmp_path):
    spec = DatasetSpec(systems=8, seed=3, **SMALL)
    generate_dataset(spec, tmp_path / "one.h5", workers=1)
    generate_dataset(spec, tmp_path / "two.h5", workers=2)
    one, two = load_dataset(tmp_path / "one.h5"), load_dataset(tmp_path / "two.h5")
    for name in ("rdm1", "energy", "uhf/energy", "natural_occupations"):
        np.testing.assert_allclose(one.arrays[name], two.arrays[name], atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"systems": 0}, "systems"),
        ({"seed": -1}, "seed"),
        ({"points": 5}, "points"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"interaction": "yukawa"}, "interaction"),
    ],
)
def test_bad_dataset_parameters_name_the_parameter(kwargs, parameter):
    with pytest.raises(InvalidParameterError) as info:
        DatasetSpec(**kwargs)
    assert str(info.value).startswith(parameter)
