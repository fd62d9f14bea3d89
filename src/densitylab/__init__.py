"""densitylab: machine learning for electronic structure.

Workflows live in sub-packages, each with a config, a ``run`` and results that save as
artefacts: :mod:`densitylab.model1d` (exact 1D model systems, the foundation),
:mod:`densitylab.rdm`, :mod:`densitylab.tdks`, :mod:`densitylab.dft` and
:mod:`densitylab.density`. :func:`densitylab.load` opens any artefact, dataset or shipped model.
Importing densitylab imports none of them (nor JAX, PySCF or matplotlib).
"""

from densitylab.errors import DensitylabError, InvalidParameterError, SCFConvergenceError

__version__ = "0.1.0"


def load(path_or_name, kind=None):
    """Open an artefact folder, a densitylab HDF5 file or a shipped model by its kind; see
    :func:`densitylab.loading.load`."""
    from densitylab.loading import load as open_artefact

    return open_artefact(path_or_name, kind)


__all__ = ["DensitylabError", "InvalidParameterError", "SCFConvergenceError", "__version__", "load"]
