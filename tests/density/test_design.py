"""The factored design matrix Φ (densitylab.density.design) against the sparse Φ built entry by
entry, and its transpose against the adjoint identity."""

import numpy as np
import pytest
import scipy.sparse
from ase.build import molecule as ase_molecule
from hypothesis import given, settings
from hypothesis import strategies as st

from densitylab.density import regression
from densitylab.density.design import DesignBlock, FactoredDesign, channel_gram
from densitylab.density.features import FeatureSettings
from densitylab.density.pipeline import train
from densitylab.density.reference import ReferenceSettings, generate_reference, load_reference
from densitylab.errors import InvalidParameterError


@st.composite
def designs(draw):
    """A random Φ: a few (species, λ) blocks with random Ψ, some radial channels absent on
    some rows (a block's rows need not cover every channel), rows in random order."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    blocks, offset, row = [], 0, 0
    for _ in range(draw(st.integers(1, 4))):
        kernel_rows, width, channels = (
            draw(st.integers(1, 6)),
            draw(st.integers(1, 5)),
            draw(st.integers(1, 4)),
        )
        pairs = [(k, n) for k in range(kernel_rows) for n in range(channels) if rng.random() < 0.8]
        if not pairs:
            pairs = [(0, 0)]
        kernel, channel = (np.array(column) for column in zip(*pairs, strict=True))
        rows = np.arange(row, row + len(pairs))
        blocks.append(
            DesignBlock(offset, channels, rng.normal(size=(kernel_rows, width)), rows, kernel, channel)
        )
        offset, row = offset + channels * width, row + len(pairs)
    order = rng.permutation(row)  # coefficient rows in any order
    blocks = [
        DesignBlock(b.offset, b.channels, b.psi, order[b.rows], b.kernel_rows, b.channel) for b in blocks
    ]
    return FactoredDesign(blocks, (row, offset)), rng


@settings(max_examples=40, deadline=None)
@given(designs())
def test_the_transpose_is_the_adjoint_and_matrices_act_column_by_column(drawn):
    """Catches Φᵀ scattering into the wrong channel or row: ⟨Φw, z⟩ = ⟨w, Φᵀz⟩ for random
    w and z, and Φ·[w₁ w₂] = [Φw₁ Φw₂] (likewise Φᵀ)."""
    design, rng = drawn
    rows, size = design.shape
    w, z = rng.normal(size=(size, 2)), rng.normal(size=(rows, 2))
    assert float(z[:, 0] @ (design @ w[:, 0])) == pytest.approx(
        float(w[:, 0] @ (design.T @ z[:, 0])), rel=1e-12
    )
    np.testing.assert_allclose(design @ w, np.stack([design @ w[:, k] for k in range(2)], axis=1), atol=1e-12)
    np.testing.assert_allclose(
        design.T @ z, np.stack([design.T @ z[:, k] for k in range(2)], axis=1), atol=1e-12
    )
    np.testing.assert_allclose(design.tocsr() @ w[:, 0], design @ w[:, 0], atol=1e-12)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A model on three small molecules of H, C, N and O, and their design matrices."""
    path = tmp_path_factory.mktemp("design") / "ref.h5"
    frames = [ase_molecule(name) for name in ("CH4", "NH3", "H2O", "HCN")]
    generate_reference(frames, path, ReferenceSettings(chunk_size=4))
    reference = load_reference(path)
    features = FeatureSettings(max_radial=4, max_angular=4, columns=200)
    trained, _ = train(reference, [0, 1, 2, 3], features, regression.RegressionSettings(5, solver="direct"))
    labels = [reference.labels[i] for i in range(4)]
    numbers = [reference.numbers[i] for i in range(4)]
    selected = trained.featurise(frames)
    return trained.model, selected, labels, numbers


def _entry_by_entry(model, features, labels, numbers, structure):
    """Φ built one coefficient row at a time from its (atom, λ, n, m) label: the row of
    coefficient (atom of species a, λ, n, m) holds that atom's Ψ_m in weight block (a, λ, n)."""
    layout = regression._weight_layout(model)
    size = sum(width for _, width in layout.values())
    matrix = scipy.sparse.lil_matrix((len(labels), size))
    atoms_of = {a: [tuple(x) for x in features.atoms[a]] for a in features.atoms}
    for row, (atom, l, n, m) in enumerate(labels):
        a = int(numbers[atom])
        psi = regression._psi(
            model, a, int(l), features, np.array([atoms_of[a].index((structure, int(atom)))])
        )
        offset, width = layout[(a, int(l), int(n))]
        matrix[row, offset : offset + width] = psi[0, int(m) + int(l)]
    return matrix.tocsr()


def test_factored_design_equals_the_sparse_design_built_entry_by_entry(mixed):
    """Catches a Ψ row, channel or weight block misplaced by the factoring (rows of several
    species and λ ≤ 4, molecules without some species): Φ and Φᵀ act as the entry-by-entry Φ,
    and the preconditioner's G is that Φ's channel-0 Gram matrix."""
    model, features, labels, numbers = mixed
    found = regression.design_matrices(model, features, labels, numbers)
    layout = regression._weight_layout(model)
    rng = np.random.default_rng(0)
    for structure, design in enumerate(found):
        expected = _entry_by_entry(model, features, labels[structure], numbers[structure], structure)
        w, z = rng.normal(size=design.shape[1]), rng.normal(size=design.shape[0])
        np.testing.assert_allclose(design @ w, expected @ w, atol=1e-12)
        np.testing.assert_allclose(design.T @ z, expected.T @ z, atol=1e-12)
        for (_, _, n), (offset, width) in layout.items():
            if n == 0:
                np.testing.assert_allclose(
                    channel_gram(design, offset, width), channel_gram(expected, offset, width), atol=1e-12
                )


def test_a_structure_with_an_unseen_element_or_channel_is_refused_by_name(mixed):
    """Catches a KeyError or a silent zero row for what the model was not trained on."""
    model, features, labels, numbers = mixed
    fluorine = np.array(numbers[2])
    fluorine[0] = 9  # water's O relabelled F
    with pytest.raises(InvalidParameterError, match=r"structures.*species the model was trained on"):
        regression.design_matrices(model, features, labels, [numbers[0], numbers[1], fluorine, numbers[3]])
    wide = np.array(labels[2])
    wide[0, 2] = 99  # a radial channel the model does not have
    with pytest.raises(InvalidParameterError, match=r"structures.*radial channels"):
        regression.design_matrices(model, features, [labels[0], labels[1], wide, labels[3]], numbers)


def test_the_cg_solve_runs_with_one_blas_thread(monkeypatch):
    """Catches the CG solve left to OpenBLAS's default threads, which wait on each other when
    the cores are busy (150× slower preconditioner products beside other work; BENCHMARKS.md)."""
    import threadpoolctl

    from densitylab.density import cg

    seen = []

    def recording(*args, **kwargs):
        pools = threadpoolctl.threadpool_info()
        seen.extend(pool["num_threads"] for pool in pools if pool["user_api"] == "blas")
        return np.zeros(2), {}

    monkeypatch.setattr(cg, "conjugate_gradients", recording)
    problem = cg.CGProblem([scipy.sparse.csr_matrix(np.eye(2))], [cg.pack_metric(np.eye(2))], {}, {})
    problem.solve(np.ones(2), 1.0, 1e-8, 10)
    assert seen and set(seen) == {1}
