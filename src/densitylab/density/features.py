"""λ-SOAP features: for every species a and λ = 0 … λ_max, an array (atoms of a, 2λ+1, F) of
proper (σ = +1) equivariant features, normalised per atomic environment, reduced to a
farthest-point-sampled subset of the Clebsch–Gordan product columns.

Two routes give the same numbers on the kept columns:

* :func:`lambda_soap`: featomic's ``EquivariantPowerSpectrum``, every product column
  (l₁, l₂, a₁, n₁, a₂, n₂) of every block. On QM9 with five species and λ ≤ 5 that is
  ≈ 37,000 columns × (2λ+1) per atom, 1.8 GB for 60 molecules, of which 600 per block are kept.
* :func:`selected_lambda_soap`: featomic's ``SphericalExpansion`` (cheap), then only the kept
  products, T^λμ = Σ_{m₁m₂} C^{λμ}_{l₁m₁l₂m₂} ρ^{a₁}_{n₁l₁m₁} ρ^{a₂}_{n₂l₂m₂}, with featomic's own
  (real) Clebsch–Gordan coefficients and its column labels. The columns are chosen by
  :func:`choose_columns` from the full product of a few hundred atoms per species.

The product is written here (a few lines of einsum) because featomic computes products only for
whole blocks; its coefficients and metadata are reused, so the columns mean the same thing.

Positions in ångström; the cutoff too.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

from densitylab.errors import require, require_finite

# featomic's GTO radial integral fails (a Rust panic) once cutoff/width passes 37-40, whatever
# max_radial (2-12) and max_angular (4-8): measured on water at widths 0.3 and 0.5 Å.
MAX_CUTOFF_OVER_WIDTH = 35.0


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
        largest = MAX_CUTOFF_OVER_WIDTH * self.width
        require(
            self.cutoff <= largest,
            "cutoff",
            f"at most {MAX_CUTOFF_OVER_WIDTH:g} × the Gaussian width, {largest:.3g} Å for {self.width:g} Å "
            "(featomic's radial integrals fail beyond)",
            self.cutoff,
        )
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
    """Normalised λ-SOAP features (σ = +1, λ ≤ ``lambda_max``), every product column, of
    ``frames`` (``ase.Atoms``) for the centre and neighbour ``species`` (atomic numbers; fixed so
    that every structure has the same property columns)."""
    tensor = _calculator(species, settings).compute(frames, neighbors_to_properties=True)
    return _blocks(tensor, lambda_max)


def _blocks(tensor, lambda_max: int) -> Features:
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


def _calculator(species: list[int], settings: FeatureSettings):
    import featomic
    from featomic.clebsch_gordan import EquivariantPowerSpectrum

    return EquivariantPowerSpectrum(featomic.SphericalExpansion(**settings.hypers()), neighbor_types=species)


def product_labels(lambda_max: int, species: list[int], settings: FeatureSettings) -> dict:
    """{(species, λ): (F, 6) integer labels (l₁, l₂, a₁, n₁, a₂, n₂)} of every column of the full
    product, in featomic's column order, from its metadata (no product is computed) for one
    isolated atom of each species (the columns do not depend on the structures)."""
    return _product_labels(lambda_max, tuple(species), settings)


@functools.lru_cache(maxsize=8)
def _product_labels(lambda_max: int, species: tuple, settings: FeatureSettings) -> dict:
    import ase

    atoms = ase.Atoms(
        numbers=species, positions=[[0.0, 0.0, 10.0 * settings.cutoff * i] for i in range(len(species))]
    )
    metadata = _calculator(list(species), settings).compute_metadata([atoms], neighbors_to_properties=True)
    labels = {}
    for key, block in metadata.items():
        l, sigma, centre = int(key["o3_lambda"]), int(key["o3_sigma"]), int(key["center_type"])
        if sigma == 1 and l <= lambda_max:
            names = ["l_1", "l_2", "neighbor_1_type", "n_1", "neighbor_2_type", "n_2"]
            labels[(centre, l)] = np.stack([np.asarray(block.properties.column(n)) for n in names], axis=1)
    return labels


def spherical_expansion(
    frames: list, species: list[int], settings: FeatureSettings
) -> tuple[dict, dict, dict]:
    """featomic's spherical expansion with neighbour species as columns: ({(centre, l): (n, 2l+1,
    P)}, {centre: (n, 2) samples}, {(neighbour, n): column})."""
    import featomic
    from metatensor import Labels

    expansion = featomic.SphericalExpansion(**settings.hypers()).compute(frames)
    expansion = expansion.keys_to_properties(Labels(["neighbor_type"], np.array([[a] for a in species])))
    blocks, atoms = {}, {}
    for key, block in expansion.items():
        centre, l = int(key["center_type"]), int(key["o3_lambda"])
        blocks[(centre, l)] = np.asarray(block.values)
        atoms[centre] = np.asarray(block.samples.values)
    properties = np.asarray(next(iter(expansion.blocks())).properties.values)  # the same in every block
    columns = {(int(a), int(n)): i for i, (a, n) in enumerate(properties)}
    return blocks, atoms, columns


def _cg_coefficients(lambda_max: int):
    from featomic.clebsch_gordan import calculate_cg_coefficients

    return calculate_cg_coefficients(lambda_max, "python-dense", "numpy", np.float64, "cpu")


def _products(
    expansion: dict, position: dict, cg, centre: int, l: int, labels: np.ndarray, rows
) -> np.ndarray:
    """Raw products (n, 2λ+1, k) of the product columns ``labels`` (k, 6) for the atoms ``rows``
    (an index array or slice) of species ``centre``."""
    values = np.empty((len(expansion[(centre, 0)][rows]), 2 * l + 1, len(labels)))
    for l1, l2 in sorted({(int(a), int(b)) for a, b in labels[:, :2]}):
        group = np.flatnonzero((labels[:, 0] == l1) & (labels[:, 1] == l2))
        first = [position[(int(a), int(n))] for a, n in labels[group][:, 2:4]]
        second = [position[(int(a), int(n))] for a, n in labels[group][:, 4:6]]
        coefficients = cg.block({"l1": l1, "l2": l2, "lambda": l}).values[0, ..., 0]
        left = expansion[(centre, l1)][rows][:, :, first].transpose(1, 0, 2)  # (2l₁+1, n, k)
        right = expansion[(centre, l2)][rows][:, :, second].transpose(1, 0, 2)  # (2l₂+1, n, k)
        outer = left[:, None] * right[None, :]  # (2l₁+1, 2l₂+1, n, k), contiguous
        product = coefficients.reshape(-1, 2 * l + 1).T @ outer.reshape(len(left) * len(right), -1)
        values[:, :, group] = (-1) ** (l1 + l2 + l) * product.reshape(2 * l + 1, -1, len(group)).transpose(
            1, 0, 2
        )
    return values


def _normalised(values: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.sum(values**2, axis=(1, 2), keepdims=True))
    return values / np.where(norms > 0, norms, 1.0)


def selected_lambda_soap(
    frames: list,
    lambda_max: int,
    species: list[int],
    settings: FeatureSettings,
    columns: dict,
    rows_per_batch: int = 1024,
) -> Features:
    """Normalised λ-SOAP on the ``columns`` {(species, λ): indices into the full product's
    columns} alone; equal to ``apply_columns(lambda_soap(...), columns)``. Memory grows with the
    kept columns, never with the discarded ones; atoms go through in batches of ``rows_per_batch``."""
    labels = product_labels(lambda_max, species, settings)
    expansion, atoms, position = spherical_expansion(frames, species, settings)
    cg = _cg_coefficients(2 * settings.max_angular)
    blocks = {}
    for (centre, l), all_labels in labels.items():
        if centre not in atoms:  # a species of the model that these structures do not have
            continue
        kept = all_labels[columns[(centre, l)]]
        count = len(atoms[centre])
        blocks[(centre, l)] = _normalised(
            np.concatenate(
                [
                    _products(expansion, position, cg, centre, l, kept, slice(start, start + rows_per_batch))
                    for start in range(0, max(count, 1), rows_per_batch)
                ]
            )
        )
    return Features(blocks=blocks, atoms=atoms)


def choose_columns(
    frames: list,
    lambda_max: int,
    species: list[int],
    settings: FeatureSettings,
    max_rows: int = 400,
    seed: int = 0,
) -> dict:
    """{(species, λ): column indices}: farthest-point sampling (:func:`select_columns`) on the
    full product of at most ``max_rows`` randomly chosen atoms of each species, so that its
    cost and memory do not grow with the number of structures."""
    labels = product_labels(lambda_max, species, settings)
    expansion, atoms, position = spherical_expansion(frames, species, settings)
    cg = _cg_coefficients(2 * settings.max_angular)
    rng = np.random.default_rng(seed)
    chosen = {
        centre: np.sort(rng.choice(len(rows), size=max_rows, replace=False)) if len(rows) > max_rows else None
        for centre, rows in sorted(atoms.items())
    }
    blocks, candidates = {}, {}
    for (centre, l), all_labels in labels.items():
        rows = chosen[centre] if chosen[centre] is not None else slice(None)
        distinct = distinct_columns(all_labels)
        values = _normalised(_products(expansion, position, cg, centre, l, all_labels[distinct], rows))
        # columns that vanish on every chosen atom (water's O–O products with l > 0: an O centre
        # sees no other O) carry nothing and would fill the selection with copies of zero
        norms = np.sqrt(np.sum(values**2, axis=(0, 1)))
        nonzero = norms > 1e-12 * max(float(norms.max()), 1e-300)
        candidates[(centre, l)], blocks[(centre, l)] = distinct[nonzero], values[..., nonzero]
    picked = select_columns(
        Features(blocks=blocks, atoms=atoms), settings.columns, max_rows=max_rows, seed=seed
    )
    return {key: candidates[key][indices] for key, indices in picked.items()}


def distinct_columns(labels: np.ndarray) -> np.ndarray:
    """Indices of the product columns (labels (F, 6): l₁, l₂, a₁, n₁, a₂, n₂) that are not
    copies of another: for l₁ = l₂ the (a₂n₂, a₁n₁) product equals the (a₁n₁, a₂n₂) one (σ = +1),
    and featomic keeps both. Without this, a block with fewer distinct columns than asked for
    (water's λ = 0: 390 distinct of 720) fills up with copies chosen by rounding noise."""
    first, second = labels[:, 2] * 1000 + labels[:, 3], labels[:, 4] * 1000 + labels[:, 5]
    return np.flatnonzero((labels[:, 0] != labels[:, 1]) | (first <= second))


def farthest_point_sampling(points: np.ndarray, count: int, first: int = 0) -> np.ndarray:
    """Indices of ``count`` rows of ``points`` (n, d), each the farthest (Euclidean) from those
    already chosen, starting at row ``first``. Distances come from ‖x‖² + ‖y‖² − 2x·y, one
    matrix–vector product per pick (a quarter of the memory traffic of forming x − y)."""
    count = min(count, len(points))
    squares = np.einsum("ij,ij->i", points, points)
    chosen = [first]
    distances = squares - 2 * points @ points[first] + squares[first]
    for _ in range(count - 1):
        index = int(np.argmax(distances))
        chosen.append(index)
        distances = np.minimum(distances, squares - 2 * points @ points[index] + squares[index])
    return np.array(chosen)


def select_columns(
    features: Features, count: int | None, max_rows: int = 400, seed: int = 0, dimensions: int = 128
) -> dict:
    """{(species, λ): column indices}: FPS over feature columns (each column a point whose
    coordinates are its values over atoms and μ; at most ``max_rows`` randomly chosen atoms
    enter those coordinates). Coordinates beyond ``dimensions`` are reduced by a seeded Gaussian
    random projection (Johnson–Lindenstrauss: distances kept to ≈ 1/√dimensions); without it
    the picks of one QM9 block read its 8,575 × 4,400 coordinates 600 times (184 s for 60
    molecules)."""
    rng = np.random.default_rng(seed)
    selection = {}
    for key, values in features.blocks.items():
        if len(values) > max_rows:
            values = values[np.sort(rng.choice(len(values), size=max_rows, replace=False))]
        columns = values.reshape(-1, values.shape[-1]).T
        if count is None or count >= columns.shape[0]:
            selection[key] = np.arange(columns.shape[0])
            continue
        if columns.shape[1] > dimensions:
            columns = columns @ rng.normal(size=(columns.shape[1], dimensions)) / np.sqrt(dimensions)
        # single precision: the picks only compare distances, and the matrix stays in cache
        selection[key] = np.sort(farthest_point_sampling(columns.astype(np.float32), count))
    return selection


def apply_columns(features: Features, selection: dict) -> Features:
    """Keep the selected columns and renormalise each environment."""
    blocks = {}
    for key, values in features.blocks.items():
        kept = values[..., selection[key]]
        norms = np.sqrt(np.sum(kept**2, axis=(1, 2), keepdims=True))
        blocks[key] = kept / np.where(norms > 0, norms, 1.0)
    return Features(blocks=blocks, atoms=features.atoms)
