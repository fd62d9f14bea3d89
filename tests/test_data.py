import h5py
import numpy as np
import pytest

from densitylab.data import read_h5, write_h5
from densitylab.errors import InvalidParameterError


def test_write_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "out.h5"
    write_h5(path, {"x": np.arange(3.0), "group/y": np.eye(2)}, {"seed": 3, "name": "a", "nested": {"k": 1}})
    arrays, attributes = read_h5(path)
    np.testing.assert_array_equal(arrays["group/y"], np.eye(2))
    assert attributes["seed"] == 3 and attributes["name"] == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]  # no temporary left behind


def test_failed_write_leaves_existing_file_untouched(tmp_path):
    path = tmp_path / "out.h5"
    write_h5(path, {"x": np.arange(3.0)}, {"version": 1})

    class Unstorable:
        pass

    with pytest.raises(TypeError):
        write_h5(path, {"x": np.array([Unstorable()])}, {"version": 2})
    with h5py.File(path) as handle:
        assert handle.attrs["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]


def test_bad_paths_are_rejected(tmp_path):
    with pytest.raises(InvalidParameterError, match="output"):
        write_h5(tmp_path / "out.txt", {}, {})
    with pytest.raises(InvalidParameterError, match="path"):
        read_h5(tmp_path / "missing.h5")


def test_atomic_output_replaces_only_on_success(tmp_path):
    from densitylab.data import atomic_output

    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    with atomic_output(target) as temporary:
        assert temporary.suffix == ".json" and temporary != target
        temporary.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
