"""Fixtures shared by the density tests."""

import pytest


@pytest.fixture
def interrupt_second_chunk(monkeypatch):
    """Make reference generation raise KeyboardInterrupt in its second chunk (the first is
    saved as a part); returns a function that puts the real chunk task back."""
    from densitylab.density import reference as reference_module

    original = reference_module._chunk_task
    calls = {"count": 0}

    def failing(*arguments):
        calls["count"] += 1
        if calls["count"] == 2:
            raise KeyboardInterrupt
        return original(*arguments)

    monkeypatch.setattr(reference_module, "_chunk_task", failing)
    return lambda: monkeypatch.setattr(reference_module, "_chunk_task", original)
