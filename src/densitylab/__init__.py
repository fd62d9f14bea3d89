"""densitylab: machine learning for electronic structure.

Workflows live in sub-packages: :mod:`densitylab.model1d` (exact 1D model systems) is the
foundation the others build on.
"""

from densitylab.errors import DensitylabError, InvalidParameterError, SCFConvergenceError

__version__ = "0.1.0"

__all__ = ["DensitylabError", "InvalidParameterError", "SCFConvergenceError", "__version__"]
