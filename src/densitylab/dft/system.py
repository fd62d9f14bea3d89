"""Everything the Kohn–Sham energy needs, computed once by PySCF: one-electron integrals, the
orthogonalising transform, the XC grid with AO values, and the Coulomb/exchange tensors.

Shapes (``nao`` atomic orbitals, ``nmo`` ≤ nao orthonormal combinations, ``ngrid`` points,
``naux`` auxiliary functions):

- ``overlap``, ``core_hamiltonian``: (nao, nao), hartree for H;
- ``orthogonaliser`` X: (nao, nmo) with Xᵀ S X = 1 (S^{-1/2} restricted to eigenvalues above
  ``linear_dependence``, i.e. canonical orthogonalisation when the basis is nearly dependent);
- ``ao_values``: (nchunk, 1 or 4, chunk, nao) — values, then ∂/∂x, ∂/∂y, ∂/∂z for GGAs
  (bohr^{-3/2}, /bohr), the grid cut into ``nchunk`` chunks of ``chunk`` points so that the
  energy and its gradient never hold more than one chunk's intermediates (padding points carry
  zero weight and zero AO values);
- ``grid_weights``: (nchunk·chunk,) bohr³, zero on padding;
- density fitting: ``df_factor`` B (naux, nao(nao+1)/2), the Cholesky-whitened 3-centre integrals
  on the packed lower triangle, so that (μν|λσ) ≈ Σ_P B_P,μν B_P,λσ;
- exact: ``eri`` (nao, nao, nao, nao), only for small systems.

The large arrays (``ao_values``, ``df_factor``, ``eri``) are JAX arrays on the default device,
built there once; the host copy is released, so memory holds each only once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from densitylab import linalg
from densitylab.dft import compiled
from densitylab.dft.buckets import MINIMUM_STEP, Padding, bucket
from densitylab.errors import InvalidParameterError, require
from densitylab.jaxsetup import accelerator_memory, jax_numpy
from densitylab.limits import available_memory, require_disk, require_memory

DEFAULT_AUXBASIS = "def2-universal-jkfit"
EXACT_ERI_MAX_AO = 160
CHUNK_ELEMENTS = 250_000  # AO values per grid chunk (points × components × nao), 2 MB
AO_STAGE_BYTES = 4.0e6  # host block of AO values evaluated at once while they are stored
XC_GRIDS = ("auto", "stored", "streamed")
DF_STORAGES = ("auto", "device", "disk")
DF_DEVICE_FRACTION = 0.5  # "auto" keeps the DF tensor on the device up to this share of its free memory
STORED_AO_BYTES = 1.0e9  # "auto" stores the grid's AO values up to this size, else streams them
ACCELERATOR_FRACTION = 0.9  # of a GPU's free memory that "auto" lets the stored tensors take
STREAM_MEMORY_MB = 500  # host memory for one streamed block of AO values (PySCF's max_memory)
DF_BLOCK_BYTES = 2.5e8  # 3-centre integrals computed at once while the DF tensor is built


@dataclass(frozen=True)
class DFTSettings:
    """How the energy is computed. Any of these reproduces the number in PySCF.

    Attributes:
        xc: a PySCF/libxc functional string (``lda,vwn``, ``pbe``, ``b3lyp``, ``pbe0`` …).
        grid_level: PySCF's ``grids.level`` (0–9).
        coulomb: ``"df"`` (density fitting, the default) or ``"exact"`` (4-index ERIs).
        auxbasis: the auxiliary basis for density fitting (also used for exact exchange).
        unrestricted: UKS even for a closed shell; open shells (spin > 0) are always UKS.
        xc_grid: how the XC term meets the grid. ``"stored"`` keeps the AO values (and their
            gradients for GGAs) of the whole grid on the device: the fastest, at
            points × nao × 8 bytes (×4 for GGAs). ``"streamed"`` evaluates them block by block on
            the host at every evaluation, only the AOs non-negligible on each block (PySCF's
            screened ``numint``), in about PySCF's memory. ``"auto"`` (default) stores them when
            they take at most :data:`STORED_AO_BYTES` on the CPU, or, on a GPU, whenever they
            fit beside the DF tensor in :data:`ACCELERATOR_FRACTION` of its free memory (a
            streamed grid would put the XC work back on the host CPU); else streams them.
        df_storage: where the DF tensor lives. ``"device"``: built into one array on
            JAX's device, J and K compiled there. ``"disk"``: kept by PySCF on the host (in a
            temporary HDF5 file when larger than :data:`STREAM_MEMORY_MB`), and J and K built by
            PySCF's ``df_jk`` reading it block by block at every evaluation, beside the streamed
            XC grid (which it implies): the least memory (C60: PySCF's own peak, at the
            cost of reading the tensor once per evaluation). ``"auto"`` (default): the device
            while the tensor takes at most :data:`DF_DEVICE_FRACTION` of the host's free memory
            on the CPU or :data:`ACCELERATOR_FRACTION` of a GPU's, else the disk (never with a
            stored grid).
        shape_buckets: round the compiled shapes (basis functions, occupied orbitals,
            auxiliary functions, grid points) up to buckets (:mod:`densitylab.dft.buckets`) so
            that molecules of similar size and other compositions reuse compiled code, at up to
            1/8 more of each dimension. With density fitting on the device and a stored grid;
            where "auto" resolves to the disk or a streamed grid the system is not bucketed.
    """

    xc: str = "b3lyp"
    grid_level: int = 3
    coulomb: str = "df"
    auxbasis: str = DEFAULT_AUXBASIS
    unrestricted: bool = False
    xc_grid: str = "auto"
    df_storage: str = "auto"
    shape_buckets: bool = False

    def __post_init__(self) -> None:
        require(self.coulomb in ("df", "exact"), "coulomb", "'df' or 'exact'", self.coulomb)
        require(self.xc_grid in XC_GRIDS, "xc_grid", f"one of {', '.join(XC_GRIDS)}", self.xc_grid)
        require(self.df_storage in DF_STORAGES, "df_storage", "'auto', 'device' or 'disk'", self.df_storage)
        if self.df_storage == "disk":
            require(self.coulomb == "df", "df_storage", "'device' with coulomb='exact'", self.df_storage)
            require(
                self.xc_grid != "stored",
                "df_storage",
                "'device' with xc_grid='stored' ('disk' evaluates J, K and XC on the host from the density "
                "matrix, so the grid is streamed)",
                self.df_storage,
            )
        require(
            isinstance(self.grid_level, int) and 0 <= self.grid_level <= 9,
            "grid_level",
            "an integer 0–9",
            self.grid_level,
        )
        parse_xc(self.xc)  # names xc if libxc does not know it
        require(isinstance(self.shape_buckets, bool), "shape_buckets", "True or False", self.shape_buckets)
        if self.shape_buckets:
            chosen = {"coulomb": self.coulomb, "xc_grid": self.xc_grid, "df_storage": self.df_storage}
            unbucketed = [f"{k}={v!r}" for k, v in chosen.items() if v in ("exact", "streamed", "disk")]
            require(not unbucketed, "shape_buckets", "density fitting on the device and a stored grid",
                    ", ".join(unbucketed))  # fmt: skip

    def coulomb_label(self) -> str:
        return "exact" if self.coulomb == "exact" else f"df:{self.auxbasis}"


@dataclass(frozen=True)
class XCFunctional:
    """A parsed functional: its libxc string, family and exact-exchange fraction."""

    name: str
    family: str  # "LDA" or "GGA" (the DFT part; "HF" for pure Hartree–Fock)
    exact_exchange: float

    @property
    def needs_gradient(self) -> bool:
        return self.family == "GGA"


def parse_xc(xc: str) -> XCFunctional:
    """Check ``xc`` with libxc: LDA, GGA and global hybrids are supported."""
    from pyscf.dft import libxc

    require(isinstance(xc, str) and xc.strip() != "", "xc", "a functional name such as b3lyp", xc)
    try:
        family = libxc.xc_type(xc)
        omega, _, short_range = libxc.rsh_coeff(xc)
        exact_exchange = float(libxc.hybrid_coeff(xc))
    except (KeyError, ValueError, RuntimeError) as error:
        raise InvalidParameterError(
            "xc", f"a functional libxc knows, e.g. lda,vwn, pbe, blyp, b3lyp, pbe0 ({error})", xc
        ) from None
    require(
        family in ("LDA", "GGA", "HF"),
        "xc",
        "an LDA, GGA or global-hybrid functional (meta-GGAs are not supported)",
        f"{xc} ({family})",
    )
    require(omega == 0, "xc", "a global hybrid (range-separated hybrids are not supported)", xc)
    del short_range
    return XCFunctional(name=xc, family=family, exact_exchange=exact_exchange)


@dataclass(frozen=True)
class KSSystem:
    """Integrals, grid and tensors for one molecule, basis and :class:`DFTSettings` (see module doc)."""

    settings: DFTSettings
    functional: XCFunctional
    nelec: tuple[int, int]
    unrestricted: bool
    nuclear_repulsion: float
    overlap: np.ndarray
    core_hamiltonian: np.ndarray
    kinetic: np.ndarray
    orthogonaliser: np.ndarray
    grid_coords: np.ndarray
    grid_weights: np.ndarray
    ao_values: object
    df_factor: object | None
    eri: object | None
    xc_grid: str = "stored"
    host_grid: object | None = None  # (mol, PySCF Grids with screening) when streamed
    host_df: object | None = None  # PySCF's DF object (its tensor on disk) when df_storage="disk"
    padding: Padding | None = None  # the compiled shapes' buckets (DFTSettings.shape_buckets)

    @property
    def nao(self) -> int:
        return self.overlap.shape[0]

    @property
    def compiled_nao(self) -> int:
        """Basis functions of the compiled problem (ghosts included, :mod:`~densitylab.dft.buckets`)."""
        return self.nao if self.padding is None else self.padding.padded_nao

    @property
    def nmo(self) -> int:
        return self.orthogonaliser.shape[1]

    @property
    def ngrid(self) -> int:
        """Grid points (padding excluded)."""
        return self.grid_coords.shape[0]

    def flat_ao_values(self, indices: np.ndarray):
        """AO values at grid points ``indices`` (into the unpadded grid): (ncomp, len, nao)."""
        _, jnp = jax_numpy()
        chunk = self.ao_values.shape[2]
        chunk_index, offset = np.divmod(np.asarray(indices), chunk)
        return jnp.transpose(self.ao_values[chunk_index, :, offset, :], (1, 0, 2))


def orthogonaliser(overlap: np.ndarray, linear_dependence: float = 1e-8) -> np.ndarray:
    """X (nao, nmo) with Xᵀ S X = 1: symmetric S^{-1/2} when S is well conditioned, canonical
    orthogonalisation (dropping eigenvalues below ``linear_dependence``) otherwise."""
    eigenvalues, eigenvectors = np.linalg.eigh(overlap)
    keep = eigenvalues > linear_dependence
    if keep.all():
        return (eigenvectors / np.sqrt(eigenvalues)) @ eigenvectors.T
    return eigenvectors[:, keep] / np.sqrt(eigenvalues[keep])


def build_grid(mol, level: int):
    """PySCF's Becke grid at ``level``: its ``coords`` (ngrid, 3) bohr and ``weights`` (ngrid,)
    bohr³ (no screening table; :func:`build_system` adds one for a streamed grid)."""
    from pyscf import dft

    grids = dft.gen_grid.Grids(mol)
    grids.level = level
    grids.build(with_non0tab=False)
    return grids


def xc_grid_mode(
    settings: DFTSettings,
    ngrid: int,
    nao: int,
    gga: bool,
    device_free: float | None = None,
    beside: float = 0.0,
) -> str:
    """ "stored" or "streamed" for ``settings.xc_grid`` and a grid of ``ngrid`` points;
    ``device_free``: free bytes of the accelerator the arrays live on (None on the CPU), where
    ``beside`` bytes (the DF tensor) must fit too."""
    if settings.xc_grid != "auto":
        return settings.xc_grid
    if settings.df_storage == "disk":
        return "streamed"
    limit = STORED_AO_BYTES if device_free is None else ACCELERATOR_FRACTION * device_free - beside
    return "stored" if stored_ao_bytes(ngrid, nao, gga) <= limit else "streamed"


def df_storage_mode(settings: DFTSettings, tensor_bytes: float, accelerator: tuple[str, float] | None) -> str:
    """ "device" or "disk" for ``settings.df_storage``: "auto" keeps a tensor of ``tensor_bytes``
    on the device while it takes at most :data:`DF_DEVICE_FRACTION` of the host's free memory
    (CPU), or :data:`ACCELERATOR_FRACTION` of a GPU's (``accelerator``: nothing else lives
    there; the grid then streams if it does not fit beside), and never chooses the disk beside a
    stored grid."""
    if settings.df_storage != "auto":
        return settings.df_storage
    if settings.coulomb != "df" or settings.xc_grid == "stored":
        return "device"
    if accelerator is None:
        return "device" if tensor_bytes <= DF_DEVICE_FRACTION * available_memory() else "disk"
    return "device" if tensor_bytes <= ACCELERATOR_FRACTION * accelerator[1] else "disk"


def df_tensor_bytes(mol, auxmol) -> float:
    """Bytes of the DF tensor B (naux × nao(nao+1)/2 doubles); 0 without density fitting."""
    nao = mol.nao_nr()
    return 0.0 if auxmol is None else 8.0 * auxmol.nao_nr() * nao * (nao + 1) / 2


def stored_ao_bytes(points: int, nao: int, gga: bool) -> float:
    """Bytes of the AO values (and their gradients for GGAs) stored on ``points`` grid points."""
    return 8.0 * points * (4 if gga else 1) * nao


def chunking(ngrid: int, elements_per_point: int) -> tuple[int, int]:
    """(nchunk, chunk): about CHUNK_ELEMENTS AO values per chunk, chunk a multiple of 64."""
    nchunk = max(1, -(-ngrid * elements_per_point // CHUNK_ELEMENTS))
    points_per_chunk = -(-ngrid // nchunk)
    chunk = max(64, -(-points_per_chunk // 64) * 64)
    return max(1, -(-ngrid // chunk)), chunk


def _zeros(shape: tuple):
    _, jnp = jax_numpy()
    return jnp.zeros(shape)


def _write_block(buffer, block, chunk_index, row):
    """``buffer`` (nchunk, ncomp, chunk, nao) with ``block`` (ncomp, rows, nao) written at
    ``row`` of chunk ``chunk_index``."""
    jax, _ = jax_numpy()
    return jax.lax.dynamic_update_slice(buffer, block[None], (chunk_index, 0, row, 0))


def device_zeros(shape: tuple):
    """A zero array of ``shape`` made on the device (no host copy), by a stored executable."""
    return compiled.executable("zeros", _zeros, (tuple(int(n) for n in shape),), ())()


def staging_rows(chunk: int, ncomp: int, nao: int) -> int:
    """Grid points per host block of AO values while they are written: at most
    :data:`AO_STAGE_BYTES`, a multiple of 64 (so a divisor-free chunk is covered with overlap),
    at most ``chunk``."""
    return min(chunk, max(64, int(AO_STAGE_BYTES // (8 * ncomp * nao)) // 64 * 64))


def ao_on_grid(mol, coords: np.ndarray, with_gradient: bool, padded: tuple[int, int] | None = None):
    """AO values (nchunk, 1 or 4, chunk, nao) on ``coords`` (zero-padded), as a JAX array;
    ``padded``: (points, nao) of a bucketed system (:mod:`~densitylab.dft.buckets`), the ghost
    points and basis functions zero.

    PySCF evaluates them a few MB at a time (:func:`staging_rows` points), each block written
    in place into one device buffer (a donated dynamic-update), so the full array exists once:
    no host copy of it, no second device copy, and the host's transient memory is a few MB, not
    a chunk (for methane the chunk is the whole grid, and staging by chunks took 3× the array).
    The last block of a chunk starts early enough to end at its edge, rewriting rows with the
    same values. Fresh memory is expensive to touch on virtual machines (page faults); this
    touches it once.
    """
    from pyscf.dft import numint

    ncomp, nao, ngrid = (4 if with_gradient else 1), mol.nao_nr(), coords.shape[0]
    points, width = (ngrid, nao) if padded is None else padded
    nchunk, chunk = chunking(points, ncomp * width)
    rows = staging_rows(chunk, ncomp, width)
    values = device_zeros((nchunk, ncomp, chunk, width))
    host_block = np.zeros((ncomp, rows, width))  # ghost basis functions stay zero
    write = compiled.executable(
        "ao_write", _write_block, (), (values, host_block, np.int64(0), np.int64(0)), donate=(0,)
    )
    for index in range(nchunk):
        for row in range(0, chunk, rows):
            row = min(row, chunk - rows)
            first = index * chunk + row
            block = coords[first : first + rows]  # rows past the grid stay zero
            if not len(block):
                continue  # the buffer is zero there already
            host_block[:, len(block) :] = 0.0  # past the grid's end (the last block only)
            computed = numint.eval_ao(mol, block, deriv=1 if with_gradient else 0)
            host_block[:, : len(block), :nao] = np.asarray(computed).reshape(ncomp, len(block), nao)
            values = write(values, host_block, np.int64(index), np.int64(row))
            values.block_until_ready()  # the host block may be aliased: finish before refilling it
    return values


def _to_device(jax, array: np.ndarray):
    """Move a host array to the default device and release the host copy."""
    placed = jax.device_put(array)
    placed.block_until_ready()
    del array
    return placed


def auxiliary_molecule(mol, auxbasis: str):
    """PySCF's auxiliary molecule for density fitting in ``auxbasis``; a one-line error naming
    ``auxbasis`` if PySCF does not know it for every element."""
    from pyscf import df

    try:
        return df.addons.make_auxmol(mol, auxbasis)
    except (RuntimeError, KeyError) as error:
        raise InvalidParameterError(
            "auxbasis", f"an auxiliary basis PySCF knows for every element ({error})", auxbasis
        ) from None


def density_fitting_factor(mol, auxmol, block_bytes: float = DF_BLOCK_BYTES, padding: Padding | None = None):
    """B (naux, nao(nao+1)/2) on the device, with (μν|λσ) ≈ Σ_P B_Pμν B_Pλσ: L⁻¹(P|μν), J = L Lᵀ,
    for the auxiliary molecule ``auxmol`` (:func:`auxiliary_molecule`). With the ``padding`` of a
    bucketed system (:mod:`~densitylab.dft.buckets`) the pairs are those of its padded basis
    (the real pairs come first in the packed order) and the rows its padded auxiliary
    functions; ghost rows and columns are zero.

    Built by blocks of AO pairs (shell ranges of about ``block_bytes`` of 3-centre integrals,
    the blocking PySCF's ``df.outcore`` uses): PySCF computes each block on the host; it is
    solved against L (on a GPU there, the O(naux² · pairs) work of the build; on the CPU by
    LAPACK in place, which measured faster than JAX's solve here) and written in place into one
    device buffer (:func:`_df_block_writer`), so the tensor exists once.
    """
    import scipy.linalg
    from pyscf import df
    from pyscf.ao2mo.outcore import balance_partition

    naux, nao = auxmol.nao_nr(), mol.nao_nr()
    cholesky = linalg.cholesky(auxmol.intor("int2c2e"), lower=True)
    if padding is not None:  # ghost auxiliary functions: an identity block of L, zero rows of B
        ghosts = padding.padded_naux - naux
        nao, cholesky = padding.padded_nao, scipy.linalg.block_diag(cholesky, np.eye(ghosts))
    npair, naux_real, naux = nao * (nao + 1) // 2, naux, cholesky.shape[0]
    on_device = accelerator_memory() is not None  # CPU: LAPACK in place, no copy of the block
    pair_loc = mol.ao_loc_nr().astype(np.int64)
    pair_loc = pair_loc * (pair_loc + 1) // 2  # packed pairs (μ ≥ ν) before each shell
    blocks = balance_partition(pair_loc, max(1, int(block_bytes // (8 * naux))))
    width = max(int(pair_loc[last] - pair_loc[first]) for first, last, _ in blocks)
    if padding is not None:
        width = min(bucket(width, MINIMUM_STEP["pairs"]), npair)
    device_cholesky = compiled.to_device(cholesky)
    factor = device_zeros((naux, npair))
    place = _df_block_writer(width, npair, on_device)
    host_block = np.zeros((width, naux))
    for first, last, _ in blocks:
        three_centre = df.incore.aux_e2(
            mol, auxmol, "int3c2e", aosym="s2ij", shls_slice=(first, last, 0, last, 0, auxmol.nbas)
        )  # (pairs of the block, naux)
        count = three_centre.shape[0]
        host_block[:count, :naux_real] = three_centre
        host_block[count:] = 0.0
        del three_centre
        if not on_device:  # solves in place: host_block.T is Fortran-ordered
            scipy.linalg.solve_triangular(
                cholesky, host_block.T, lower=True, overwrite_b=True, check_finite=False
            )
        factor = place(factor, device_cholesky, host_block, int(pair_loc[first]), count)
        factor.block_until_ready()  # the host block is reused: finish before the next
    return factor


def host_density_fitting(mol, auxmol, auxbasis: str):
    """PySCF's DF object for ``mol`` with its tensor built: in memory when it takes less than
    :data:`STREAM_MEMORY_MB`, else in a temporary HDF5 file (PySCF's ``outcore``; deleted with
    the object), after checking the disk has room. J and K read it with
    :func:`host_coulomb_exchange`."""
    import tempfile

    from pyscf import df, lib

    require_disk(df_tensor_bytes(mol, auxmol), lib.param.TMPDIR or tempfile.gettempdir(), "df_storage",
                 "the DF tensor on disk", "disk")  # fmt: skip
    fitting = df.DF(mol, auxbasis=auxbasis)
    fitting.verbose = 0
    fitting.max_memory = lib.current_memory()[0] + STREAM_MEMORY_MB  # PySCF subtracts what is in use
    return fitting.build()


def host_coulomb_exchange(fitting, density_matrices: np.ndarray, with_coulomb: bool, with_exchange: bool):
    """(J or None, K or None) for a density matrix (nao, nao) or a stack of them, from PySCF's
    DF object ``fitting`` (:func:`host_density_fitting`), in one pass over its tensor, read block
    by block within :data:`STREAM_MEMORY_MB` beyond the memory already in use."""
    from pyscf import lib
    from pyscf.df import df_jk

    fitting.max_memory = lib.current_memory()[0] + STREAM_MEMORY_MB
    coulomb, exchange = df_jk.get_jk(
        fitting, density_matrices, hermi=1, with_j=with_coulomb, with_k=with_exchange
    )
    return (np.asarray(coulomb) if with_coulomb else None), (np.asarray(exchange) if with_exchange else None)


def _solved(on_device: bool, cholesky, block):
    if not on_device:  # solved on the host already
        return block.T
    jax, _ = jax_numpy()
    return jax.scipy.linalg.solve_triangular(cholesky, block.T, lower=True)


def _write_whole(on_device: bool, factor, cholesky, block, offset, count):
    jax, _ = jax_numpy()
    return jax.lax.dynamic_update_slice(factor, _solved(on_device, cholesky, block), (0, offset))


def _write_tail(on_device: bool, npair: int, factor, cholesky, block, offset, count):
    jax, jnp = jax_numpy()
    width = block.shape[0]
    start = npair - width
    shift = offset - start
    window = jax.lax.dynamic_slice(factor, (0, start), (factor.shape[0], width))
    column = jnp.arange(width)
    keep = (column >= shift) & (column < shift + count)
    update = jnp.where(keep[None, :], jnp.roll(_solved(on_device, cholesky, block), shift, axis=1), window)
    return jax.lax.dynamic_update_slice(factor, update, (0, start))


def _df_block_writer(width: int, npair: int, on_device: bool):
    """A ``place(B, L, block (width, naux), offset, count)``: solves L X = blockᵀ (when
    ``on_device``; else ``block`` holds Xᵀ already) and writes X's first ``count`` columns at
    column ``offset`` of B (donated, updated in place).

    Every block is padded to one ``width``, so two executables serve all of them. Blocks come
    in increasing ``offset``: a block whose padded window fits is written whole (its zero
    padding lands where the next block will be written). The last blocks' windows would run
    past B's end; theirs starts at ``npair - width`` and the solved columns are rolled into
    place, the rest of the window keeping what B holds.
    """

    def place(factor, cholesky, block, offset: int, count: int):
        arguments = (factor, cholesky, block, np.int64(offset), np.int64(count))
        if offset + width <= npair:
            chosen = compiled.executable("df_whole", _write_whole, (on_device,), arguments, donate=(0,))
        else:
            chosen = compiled.executable("df_tail", _write_tail, (on_device, npair), arguments, donate=(0,))
        return chosen(*arguments)

    return place


def _require_memory(
    mol, auxmol, stored_points: int, gga: bool, accelerator: tuple[str, float] | None, padding=None
) -> None:
    """Refuse, before allocating them, a DF tensor and stored AO values that cannot fit in the
    memory of the device they go to (``accelerator``: (platform, free bytes), None for the host),
    padded to their buckets with ``padding``."""
    nao = mol.nao_nr()
    tensor, grid = df_tensor_bytes(mol, auxmol), stored_ao_bytes(stored_points, nao, gga)
    if padding is not None:
        tensor, grid = padding.array_bytes(gga)
    hints = (
        "; df_storage='disk' keeps it on disk" if tensor else "",
        "; xc_grid='streamed' keeps none" if grid else "",
    )
    what = (f"the DF tensor ({tensor / 1e9:.3g} GB{hints[0]}) and the grid's stored AO values "
            f"({grid / 1e9:.3g} GB{hints[1]})")  # fmt: skip
    got = f"{mol.natm} atoms, {nao} basis functions"
    if accelerator is None:
        require_memory(tensor + grid, "molecule", what, got)
    else:
        require_memory(tensor + grid, "molecule", what, got, accelerator[1], f"{accelerator[0]} memory")


def build_system(mol, settings: DFTSettings | None = None) -> KSSystem:
    """Compute every integral the energy needs for ``mol`` (a built PySCF ``Mole``)."""
    settings = settings or DFTSettings()
    functional = parse_xc(settings.xc)
    nao = mol.nao_nr()
    if settings.coulomb == "exact":
        require(
            nao <= EXACT_ERI_MAX_AO,
            "coulomb",
            f"'df' for more than {EXACT_ERI_MAX_AO} basis functions (the exact ERIs of {nao} "
            f"would take {nao**4 * 8 / 1e9:.1f} GB)",
            settings.coulomb,
        )
    overlap = mol.intor_symmetric("int1e_ovlp")
    kinetic = mol.intor_symmetric("int1e_kin")
    core = kinetic + mol.intor_symmetric("int1e_nuc")
    mode, host_grid = "stored", None
    if functional.family == "HF":
        coords, weights = np.zeros((0, 3)), np.zeros(0)
    else:
        grids = build_grid(mol, settings.grid_level)
        coords, weights = np.asarray(grids.coords), np.asarray(grids.weights)
    auxmol = auxiliary_molecule(mol, settings.auxbasis) if settings.coulomb == "df" else None
    accelerator = accelerator_memory()
    storage = df_storage_mode(settings, df_tensor_bytes(mol, auxmol), accelerator)
    settings = replace(settings, df_storage=storage)  # the system keeps the resolved choice
    on_disk = storage == "disk"
    if functional.family != "HF":
        device_free = None if accelerator is None else accelerator[1]
        beside = 0.0 if on_disk else df_tensor_bytes(mol, auxmol)
        mode = xc_grid_mode(settings, len(weights), nao, functional.needs_gradient, device_free, beside)
        if mode == "streamed":
            grids.non0tab = grids.screen_index = grids.make_mask(mol, grids.coords)
            host_grid = (mol, grids)
    transform, padding, grid_padding = orthogonaliser(overlap), None, None
    stored_points = len(weights) if mode == "stored" else 0
    if settings.shape_buckets and mode == "stored" and not on_disk:  # then auxmol is not None
        nelec = tuple(int(n) for n in mol.nelec)
        padding = Padding.of(nao, transform.shape[1], nelec, auxmol.nao_nr(), stored_points)
        grid_padding = (padding.padded_points, padding.padded_nao)
    gga = functional.needs_gradient
    _require_memory(mol, None if on_disk else auxmol, stored_points, gga, accelerator, padding)
    ao_values = ao_on_grid(mol, coords[:stored_points], gga, grid_padding)
    nchunk, _, chunk, _ = ao_values.shape
    padded_weights = np.zeros(nchunk * chunk)  # streamed: the host grid keeps the weights
    if mode == "stored":
        padded_weights[: len(weights)] = weights
    jax, _ = jax_numpy()
    df_factor = eri = host_df = None
    if on_disk:
        host_df = host_density_fitting(mol, auxmol, settings.auxbasis)
    elif auxmol is not None:
        df_factor = density_fitting_factor(mol, auxmol, padding=padding)
    else:
        eri = _to_device(jax, mol.intor("int2e", aosym="s1").reshape(nao, nao, nao, nao))
    return KSSystem(
        settings=settings,
        functional=functional,
        nelec=tuple(int(n) for n in mol.nelec),
        unrestricted=settings.unrestricted or mol.spin != 0,
        nuclear_repulsion=float(mol.energy_nuc()),
        overlap=overlap,
        core_hamiltonian=core,
        kinetic=kinetic,
        orthogonaliser=transform,
        grid_coords=coords,
        grid_weights=padded_weights,
        ao_values=ao_values,
        df_factor=df_factor,
        eri=eri,
        xc_grid=mode,
        host_grid=host_grid,
        host_df=host_df,
        padding=padding,
    )
