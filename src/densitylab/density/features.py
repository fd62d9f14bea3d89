"""λ-SOAP features from featomic's ``EquivariantPowerSpectrum``: for every species a and
λ = 0 … λ_max, an array (atoms of a, 2λ+1, F) of proper (σ = +1) equivariant features,
normalised per atomic environment, optionally reduced to a farthest-point-sampled subset of
feature columns.

Positions in ångström; the cutoff too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from densitylab.errors import require, require_finite


@dataclass(frozen=True)
class FeatureSettings:
    """λ-SOAP hyper-parameters (featomic ``SphericalExpansion`` then a Clebsch–Gordan product).

    Attributes:
        cutoff: neighbour cutoff (Å); width: Gaussian atom density width (Å).
        max_radial, max_angular: expansion sizes (max_angular ≥ λ_max / 2 is needed for λ_max).
        columns: feature columns kept per block by farthest-point sampling (None: all).
    """

    cutoff: float = 4.0
    width: float = 0.3
    max_radial: int = 6
    max_angular: int = 4
    columns: int | None = 600

    def __post_init__(self) -> None:
        require_finite(cutoff=self.cutoff, width=self.width)
        require(self.cutoff > 0, "cutoff", "a positive radius in Å", self.cutoff)
        require(self.width > 0, "width", "a positive Gaussian width in Å", self.width)
        require(
            self.max_radial >= 1 and self.max_angular >= 0, "max_radial", "≥ 1 (and max_angular ≥ 0)", self
        )
        require(
            self.columns is None or self.columns >= 1, "columns", "a positive integer or None", self.columns
        )

    def hypers(self) -> dict:
        return {
            "cutoff": {"radius": self.cutoff, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
            "density": {"type": "Gaussian", "width": self.width},
            "basis": {
                "type": "TensorProduct",
                "max_angular": self.max_angular,
                "radial": {"type": "Gto", "max_radial": self.max_radial},
            },
        }

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class Features:
    """λ-SOAP blocks of a list of structures.

    Attributes:
        blocks: {(species, λ): (n_atoms, 2λ+1, F)} normalised features.
        atoms: {species: (n_atoms, 2)} (structure index, atom index) of each row.
    """

    blocks: dict
    atoms: dict


def lambda_soap(frames: list, lambda_max: int, species: list[int], settings: FeatureSettings) -> Features:
    """Normalised λ-SOAP features (σ = +1, λ ≤ ``lambda_max``) of ``frames`` (``ase.Atoms``)
    for the centre and neighbour ``species`` (atomic numbers; fixed so that every structure has
    the same property columns)."""
    import featomic
    from featomic.clebsch_gordan import EquivariantPowerSpectrum

    calculator = EquivariantPowerSpectrum(
        featomic.SphericalExpansion(**settings.hypers()), neighbor_types=species
    )
    tensor = calculator.compute(frames, neighbors_to_properties=True)
    blocks, atoms = {}, {}
    for key, block in tensor.items():
        l, sigma, centre = int(key["o3_lambda"]), int(key["o3_sigma"]), int(key["center_type"])
        if sigma != 1 or l > lambda_max:
            continue
        values = np.asarray(block.values)  # (n, 2λ+1, F)
        samples = np.asarray(block.samples.values)  # (system, atom)
        norms = np.sqrt(np.sum(values**2, axis=(1, 2), keepdims=True))
        blocks[(centre, l)] = values / np.where(norms > 0, norms, 1.0)
        atoms.setdefault(centre, samples)
        require(
            np.array_equal(atoms[centre], samples), "features", "the same sample order in every λ block", None
        )
    return Features(blocks=blocks, atoms=atoms)


def farthest_point_sampling(points: np.ndarray, count: int, first: int = 0) -> np.ndarray:
    """Indices of ``count`` rows of ``points`` (n, d), each the farthest (Euclidean) from those
    already chosen, starting at row ``first``."""
    count = min(count, len(points))
    chosen = [first]
    distances = np.sum((points - points[first]) ** 2, axis=1)
    for _ in range(count - 1):
        index = int(np.argmax(distances))
        chosen.append(index)
        distances = np.minimum(distances, np.sum((points - points[index]) ** 2, axis=1))
    return np.array(chosen)


def select_columns(features: Features, count: int | None, max_rows: int = 400, seed: int = 0) -> dict:
    """{(species, λ): column indices}: FPS over feature columns (each column a point whose
    coordinates are its values over atoms and μ; at most ``max_rows`` randomly chosen atoms
    enter those coordinates, which keeps the selection cheap for large training sets)."""
    rng = np.random.default_rng(seed)
    selection = {}
    for key, values in features.blocks.items():
        if len(values) > max_rows:
            values = values[np.sort(rng.choice(len(values), size=max_rows, replace=False))]
        columns = values.reshape(-1, values.shape[-1]).T
        if count is None or count >= columns.shape[0]:
            selection[key] = np.arange(columns.shape[0])
        else:
            selection[key] = np.sort(farthest_point_sampling(columns, count))
    return selection


def apply_columns(features: Features, selection: dict) -> Features:
    """Keep the selected columns and renormalise each environment."""
    blocks = {}
    for key, values in features.blocks.items():
        kept = values[..., selection[key]]
        norms = np.sqrt(np.sum(kept**2, axis=(1, 2), keepdims=True))
        blocks[key] = kept / np.where(norms > 0, norms, 1.0)
    return Features(blocks=blocks, atoms=features.atoms)
