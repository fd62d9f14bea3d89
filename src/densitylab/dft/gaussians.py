"""Gaussian basis sets whose exponents and contraction coefficients are JAX parameters.

A basis is a :class:`BasisLayout` (static: which shells sit on which atom, their angular
momenta, and which *parameter group* each shell reads) and a parameter pytree (one entry per
group: log-exponents and raw contraction coefficients). Groups are tied per element by default
(every oxygen 2s shell reads the same exponents, so the result is a transferable basis), or per
atom.

Conventions are PySCF's (checked against ``mol.eval_gto`` and ``int1e_ovlp`` in the tests):
primitives exp(−α r²) with ``gto_norm``, contracted functions normalised, cartesian components
ordered xx, xy, xz, yy, yz, zz…, spherical functions from libcint's ``cart2sph`` (which carries
the s and p factors). Positivity of the exponents comes from α = exp(log α); the contraction
coefficients are free (the contracted function is renormalised).

Written by hand because no maintained library evaluates Gaussian basis functions *and* their
overlaps differentiably in the exponents within JAX: the overlap uses the Obara–Saika
recursion on all primitive pairs at once, which needs no Boys function. Lengths in bohr.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gamma

import numpy as np

from densitylab.errors import require
from densitylab.jaxsetup import jax_modules

TIES = ("element", "atom")
ALL_ELECTRON = "an all-electron basis (no effective core potentials)"
ANGULAR_LETTERS = "SPDFGHI"


def _cartesian_powers(l: int) -> list[tuple[int, int, int]]:
    """PySCF's order of the cartesian components of angular momentum ``l``."""
    return [(lx, ly, l - lx - ly) for lx in reversed(range(l + 1)) for ly in reversed(range(l + 1 - lx))]


@dataclass(frozen=True)
class BasisLayout:
    """Which shells there are and which parameter group each reads.

    Attributes:
        centres: (natom, 3) nuclear positions (bohr).
        symbols: element symbol per atom.
        shell_atom, shell_group: per shell, its atom and parameter group.
        group_l: angular momentum per group.
        group_labels: a readable name per group ("O 2 p", "H1 0 s").
        tie: "element" or "atom".
    """

    centres: np.ndarray
    symbols: tuple[str, ...]
    shell_atom: tuple[int, ...]
    shell_group: tuple[int, ...]
    group_l: tuple[int, ...]
    group_labels: tuple[str, ...]
    tie: str

    @property
    def nao(self) -> int:
        return sum(2 * self.group_l[g] + 1 for g in self.shell_group)

    @property
    def max_l(self) -> int:
        return max(self.group_l)


def layout_from_mol(
    mol, tie: str = "element", extra_shells: dict[str, list[tuple[int, float]]] | None = None
):
    """The layout and starting parameters of ``mol``'s basis, plus ``extra_shells``.

    ``extra_shells``: element → [(l, exponent), …] one-primitive shells to add (e.g. a polarisation
    d shell on O). Returns ``(layout, params)`` with params a tuple of (log_exponents,
    coefficients) per group. Groups are formed from the basis as PySCF stores it per element
    (``mol._basis``), so two atoms of an element share groups unless ``tie="atom"``.
    """
    require(tie in TIES, "tie", f"one of {', '.join(TIES)}", tie)
    require(not mol.cart, "basis", "spherical basis functions (mol.cart = False)", "cartesian")
    require(not mol.has_ecp(), "basis", ALL_ELECTRON, "an ECP basis")
    extra_shells = extra_shells or {}
    groups: dict[tuple, int] = {}
    group_l, labels, params = [], [], []
    shell_atom, shell_group = [], []
    for atom in range(mol.natm):
        symbol = mol.atom_pure_symbol(atom)
        key_owner = symbol if tie == "element" else f"{symbol}{atom}"
        shells = [(int(s[0]), np.array(s[1:], dtype=float)) for s in mol._basis[mol.atom_symbol(atom)]]
        shells += [(int(l), np.array([[exponent, 1.0]])) for l, exponent in extra_shells.get(symbol, [])]
        for index, (l, table) in enumerate(shells):
            require(
                table.shape[1] == 2, "basis", "one contraction per shell (general contractions split)", symbol
            )
            key = (key_owner, index)
            if key not in groups:
                groups[key] = len(group_l)
                group_l.append(l)
                labels.append(f"{key_owner} {index} {ANGULAR_LETTERS[l].lower()}")
                params.append((np.log(table[:, 0]), table[:, 1].copy()))
            shell_atom.append(atom)
            shell_group.append(groups[key])
    layout = BasisLayout(
        centres=np.asarray(mol.atom_coords(), dtype=float),
        symbols=tuple(mol.atom_pure_symbol(a) for a in range(mol.natm)),
        shell_atom=tuple(shell_atom),
        shell_group=tuple(shell_group),
        group_l=tuple(group_l),
        group_labels=tuple(labels),
        tie=tie,
    )
    return layout, tuple(params)


def _split_general(mol):
    """``mol`` with every general contraction split into one column per shell (PySCF's basis
    entries may carry several coefficient columns)."""
    basis = {}
    for symbol, shells in mol._basis.items():
        split = []
        for shell in shells:
            table = np.array(shell[1:], dtype=float)
            for column in range(1, table.shape[1]):
                split.append([int(shell[0])] + [[row[0], row[column]] for row in table])
        basis[symbol] = split
    return basis


def prepare(mol, tie: str = "element", extra_shells=None):
    """:func:`layout_from_mol` after splitting general contractions (cc-pVXZ stores them)."""
    require(not mol.has_ecp(), "basis", ALL_ELECTRON, "an ECP basis")
    split = mol.copy()
    split.basis = _split_general(mol)
    split.build(verbose=0)
    return layout_from_mol(split, tie, extra_shells)


def _gaussian_integral(jnp, n: int, alpha):
    """∫₀^∞ rⁿ exp(−α r²) dr."""
    return gamma((n + 1) / 2) / (2.0 * alpha ** ((n + 1) / 2))


def _contraction(jnp, l: int, log_exponents, coefficients):
    """Exponents and the coefficients of normalised primitives that make the contracted radial
    function normalised (PySCF's ``_libcint_ctr_coeff``)."""
    exponents = jnp.exp(log_exponents)
    norms = 1.0 / jnp.sqrt(_gaussian_integral(jnp, 2 * l + 2, 2.0 * exponents))
    scaled = coefficients * norms
    pair = _gaussian_integral(jnp, 2 * l + 2, exponents[:, None] + exponents[None, :])
    total = scaled @ pair @ scaled
    return exponents, scaled / jnp.sqrt(total)


@dataclass(frozen=True)
class _Primitives:
    """Static bookkeeping of the cartesian primitives: per primitive its atom, powers, group
    and index within the group; per cartesian function its shell; the cart→sph matrix."""

    atom: np.ndarray
    powers: np.ndarray
    group: np.ndarray
    position: np.ndarray
    cartesian: np.ndarray
    cart2sph: np.ndarray
    ncart: int


def _primitives(layout: BasisLayout, params) -> _Primitives:
    from pyscf.gto.mole import cart2sph

    atom, powers, group, position, cartesian = [], [], [], [], []
    blocks = []
    ncart = 0
    for shell, g in enumerate(layout.shell_group):
        l = layout.group_l[g]
        nprim = len(params[g][0])
        for component, power in enumerate(_cartesian_powers(l)):
            for k in range(nprim):
                atom.append(layout.shell_atom[shell])
                powers.append(power)
                group.append(g)
                position.append(k)
                cartesian.append(ncart + component)
        ncart += len(_cartesian_powers(l))
        blocks.append(cart2sph(l))
    matrix = np.zeros((ncart, layout.nao))
    row = column = 0
    for block in blocks:
        matrix[row : row + block.shape[0], column : column + block.shape[1]] = block
        row, column = row + block.shape[0], column + block.shape[1]
    return _Primitives(
        atom=np.array(atom),
        powers=np.array(powers),
        group=np.array(group),
        position=np.array(position),
        cartesian=np.array(cartesian),
        cart2sph=matrix,
        ncart=ncart,
    )


def _primitive_values(jnp, layout: BasisLayout, params, primitives: _Primitives):
    """Per cartesian primitive: exponent and contraction coefficient (both depend on params)."""
    exponents, coefficients = [], []
    for g, (log_exponents, raw) in enumerate(params):
        e, c = _contraction(jnp, layout.group_l[g], jnp.asarray(log_exponents), jnp.asarray(raw))
        exponents.append(e)
        coefficients.append(c)
    offsets = np.cumsum([0] + [len(p[0]) for p in params])
    flat = offsets[primitives.group] + primitives.position
    return jnp.concatenate(exponents)[flat], jnp.concatenate(coefficients)[flat]


class GaussianBasis:
    """A layout with its primitive bookkeeping; evaluates AO values and overlaps for any params
    of the layout's shape. Pure functions of ``params``, differentiable with JAX."""

    def __init__(self, layout: BasisLayout, params):
        self.layout = layout
        self.primitives = _primitives(layout, params)

    def values(self, params, points):
        """AO values (npoints, nao) at ``points`` (npoints, 3) bohr."""
        _, jnp, _ = jax_modules()
        prim = self.primitives
        exponents, coefficients = _primitive_values(jnp, self.layout, params, prim)
        centres = jnp.asarray(self.layout.centres)[prim.atom]  # (nprim, 3)
        offsets = points[:, None, :] - centres[None, :, :]  # (npoints, nprim, 3)
        r2 = jnp.sum(offsets**2, axis=-1)
        monomial = _monomials(jnp, offsets, prim.powers, self.layout.max_l)
        primitive = coefficients * monomial * jnp.exp(-exponents * r2)
        cartesian = jnp.zeros((points.shape[0], prim.ncart)).at[:, prim.cartesian].add(primitive)
        return cartesian @ jnp.asarray(prim.cart2sph)

    def overlap(self, params):
        """The analytic overlap matrix (nao, nao) by the Obara–Saika recursion."""
        _, jnp, _ = jax_modules()
        prim = self.primitives
        exponents, coefficients = _primitive_values(jnp, self.layout, params, prim)
        centres = jnp.asarray(self.layout.centres)[prim.atom]
        a, b = exponents[:, None], exponents[None, :]
        p = a + b
        mu = a * b / p
        product = 1.0
        for axis in range(3):
            xa, xb = centres[:, axis][:, None], centres[:, axis][None, :]
            xp = (a * xa + b * xb) / p
            table = _overlap_1d(jnp, self.layout.max_l, xp - xa, xp - xb, p, mu * (xa - xb) ** 2)
            i = prim.powers[:, axis]
            stacked = jnp.stack([jnp.stack(row) for row in table])  # (lmax+1, lmax+1, n, n)
            n = len(i)
            product = product * stacked[i[:, None], i[None, :], np.arange(n)[:, None], np.arange(n)[None, :]]
        weighted = coefficients[:, None] * product * coefficients[None, :]
        cartesian = (
            jnp.zeros((prim.ncart, prim.ncart))
            .at[prim.cartesian[:, None], prim.cartesian[None, :]]
            .add(weighted)
        )
        transform = jnp.asarray(prim.cart2sph)
        return transform.T @ cartesian @ transform


def _monomials(jnp, offsets, powers: np.ndarray, lmax: int):
    """Π_axis offset_axis^power by repeated multiplication (x**0 through ``**`` has NaN
    second derivatives at x = 0 and through a negative base)."""
    result = 1.0
    for axis in range(3):
        x = offsets[..., axis]
        total, term = 0.0, jnp.ones_like(x)
        for k in range(lmax + 1):
            if k:
                term = term * x
            selected = powers[:, axis] == k
            if selected.any():
                total = total + term * jnp.asarray(selected, dtype=x.dtype)
        result = result * total
    return result


def _overlap_1d(jnp, lmax: int, xpa, xpb, p, exponent):
    """s[i][j] = ∫ (x−A)^i (x−B)^j exp(−a(x−A)² − b(x−B)²) dx for i, j ≤ lmax (Obara–Saika)."""
    s = [[None] * (lmax + 1) for _ in range(lmax + 1)]
    s[0][0] = jnp.sqrt(jnp.pi / p) * jnp.exp(-exponent)
    half = 0.5 / p
    for i in range(lmax + 1):
        for j in range(lmax + 1):
            if i == 0 and j == 0:
                continue
            if i > 0:
                value = xpa * s[i - 1][j]
                if i > 1:
                    value = value + half * (i - 1) * s[i - 2][j]
                if j > 0:
                    value = value + half * j * s[i - 1][j - 1]
            else:
                value = xpb * s[i][j - 1]
                if j > 1:
                    value = value + half * (j - 1) * s[i][j - 2]
            s[i][j] = value
    return s


def pyscf_basis(layout: BasisLayout, params) -> dict:
    """The basis as PySCF's internal dict, keyed by element (or by atom label 'O0', 'H1', … with
    ``tie="atom"``; PySCF accepts such labels in ``atom`` and ``basis``)."""
    basis: dict[str, list] = {}
    for g, label in enumerate(layout.group_labels):
        log_exponents, coefficients = (np.asarray(x, dtype=float) for x in params[g])
        shell = [layout.group_l[g]] + [
            [float(e), float(c)] for e, c in zip(np.exp(log_exponents), coefficients, strict=True)
        ]
        basis.setdefault(label.split()[0], []).append(shell)
    return basis


def nwchem_text(layout: BasisLayout, params) -> str:
    """The basis in NWChem format, one '#BASIS SET' block per element, which PySCF reads as a
    file (``gto.M(basis="basis.nw")``) or a string (``gto.basis.parse``)."""
    lines = []
    for owner, shells in pyscf_basis(layout, params).items():
        lines.append(f"#BASIS SET: {owner} optimised by densitylab (exponents in bohr^-2)")
        for shell in shells:
            lines.append(f"{owner}    {ANGULAR_LETTERS[shell[0]]}")
            lines.extend(f"  {exponent:22.14e} {coefficient:22.14e}" for exponent, coefficient in shell[1:])
    lines.append("END")
    return "\n".join(lines) + "\n"


def parse_extra_shells(shells: tuple[str, ...]) -> dict[str, list[tuple[int, float]]]:
    """('O:d:0.8', 'H:p:1.0') → {'O': [(2, 0.8)], 'H': [(1, 1.0)]}."""
    parsed: dict[str, list[tuple[int, float]]] = {}
    for text in shells:
        parts = str(text).split(":")
        ok = len(parts) == 3 and parts[1].upper() in ANGULAR_LETTERS
        exponent = float(parts[2]) if ok and _is_number(parts[2]) else float("nan")
        require(
            ok and np.isfinite(exponent) and exponent > 0,
            "extra_shells",
            "entries ELEMENT:L:EXPONENT such as O:d:0.8 (L one of s p d f g, exponent > 0 in bohr⁻²)",
            text,
        )
        parsed.setdefault(parts[0].capitalize(), []).append(
            (ANGULAR_LETTERS.index(parts[1].upper()), exponent)
        )
    return parsed


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
