"""benchmarks/tdks_chain.sh, the resumable chain of the issue-18 candidate, run against stub
``densitylab`` and ``python`` commands that record their calls: the order of its steps, that a
finished functional is not trained again, that STEP stops it, and TDKS_CHAIN_KEEP copies."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "tdks_chain.sh"

STUB = """#!/bin/bash
echo "$(basename "$0") $*" >> "$CALLS"
if [ "$2" = functional ] || [ "$2" = switch ]; then
    while [ $# -gt 0 ]; do [ "$1" = --output ] && out=$2; shift; done
    mkdir -p "$out" && echo '{}' > "$out/manifest.json"
fi
"""


@pytest.fixture
def stubbed(tmp_path):
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    for name in ("densitylab", "python"):
        (bin_folder / name).write_text(STUB)
        (bin_folder / name).chmod(0o755)
    calls = tmp_path / "calls.log"
    environment = {**os.environ, "PATH": f"{bin_folder}:{os.environ['PATH']}", "CALLS": str(calls)}

    def run(*arguments, **extra):
        done = subprocess.run(
            ["bash", str(SCRIPT), str(tmp_path / "data"), *arguments],
            env={**environment, **extra}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        lines = calls.read_text().splitlines() if calls.exists() else []
        calls.unlink(missing_ok=True)
        return done, lines

    return run


def _outputs(lines):
    return [line.split("--output ")[1].split()[0] for line in lines if " functional " in line]


def test_the_chain_runs_its_steps_in_order_and_resumes_without_training_again(stubbed, tmp_path):
    done, lines = stubbed()
    assert done.returncode == 0, done.stderr
    assert _outputs(lines) == ["walls-pre-seed1", "avg-seed1", "avg-strongft", "avg-strongft-window"]
    assert sum(" dataset " in line for line in lines) == 3  # the training set, held, extra
    switch = [line for line in lines if " switch " in line]
    assert (
        len(switch) == 1
        and "--network avg-strongft-window" in switch[0]
        and "--output memory-switch" in switch[0]
    )
    assert lines.index(switch[0]) > max(i for i, line in enumerate(lines) if " functional " in line)
    assert lines[-2].startswith("python ") and lines[-2].endswith("-- held extra")
    assert "tdks_switch.py memory-switch -- held extra" in lines[-1]
    starts = {line.split("--init ")[1].split()[0] for line in lines if "--init " in line}
    assert starts == {"walls-pre-seed1", "avg-seed1", "avg-strongft"}  # each from the one before
    done, lines = stubbed()  # run again: every functional is finished, only the data commands
    assert done.returncode == 0 and _outputs(lines) == [] and not any(" switch " in line for line in lines)
    assert done.stdout.count("is finished") == 5


def test_step_stops_the_chain_and_a_bad_one_is_refused(stubbed, tmp_path):
    done, lines = stubbed("pretrain")
    assert done.returncode == 0 and _outputs(lines) == ["walls-pre-seed1"]
    assert sum(" dataset " in line for line in lines) == 3  # the evaluation sets were waited for
    done, lines = stubbed("switch")
    assert done.returncode == 0 and not any(line.startswith("python ") for line in lines)
    done, lines = stubbed("everything")
    assert done.returncode == 2 and "STEP: expected" in done.stderr and lines == []


def test_keep_copies_each_finished_functional(stubbed, tmp_path):
    keep = tmp_path / "keep"
    done, _ = stubbed("rounds", TDKS_CHAIN_KEEP=str(keep))
    assert done.returncode == 0
    assert sorted(p.name for p in keep.iterdir()) == ["avg-seed1", "walls-pre-seed1"]
    assert (keep / "avg-seed1" / "manifest.json").is_file()
