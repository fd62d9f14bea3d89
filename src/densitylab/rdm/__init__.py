"""1-RDM learning: datasets of exact one-body reduced density matrices of 1D systems.

Built on :mod:`densitylab.model1d`. See docs/rdm.md.
"""

from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset


def pretrained(name: str = "gamma-n"):
    """The shipped neural γ[n] functional (loads JAX lazily); see :func:`densitylab.rdm.models.pretrained`."""
    from densitylab.rdm.models import pretrained as load

    return load(name)


__all__ = ["DatasetSpec", "generate_dataset", "load_dataset", "pretrained"]
