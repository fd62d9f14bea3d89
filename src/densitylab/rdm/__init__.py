"""1-RDM learning: datasets of exact one-body reduced density matrices of 1D systems.

Built on :mod:`densitylab.model1d`. See docs/rdm.md.
"""

from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset

__all__ = ["DatasetSpec", "generate_dataset", "load_dataset"]
