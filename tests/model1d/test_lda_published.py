"""The 1D LDA fits against values coded independently of densitylab (issue 21).

* model1d's LDA (Entwistle et al., PRB 97, 125151 (2018), softened interaction 1/(|x−x′|+1)):
  the published formulas coded here from the paper, and values printed by iDEA 1.1, the
  authors' code (``iDEA.methods.lda``, on one grid point of density n, by
  ``exchange_correlation_energy(..., separate=True)`` and ``exchange_correlation_potential``).
* tdks's ALDA correlation (Helbig et al., PRA 83, 032503 (2011), soft-Coulomb 1/√((x−x′)²+1)):
  libxc's ``LDA_C_1D_CSC`` (Casula–Sorella–Senatore form with the soft-Coulomb b = 1
  parameters), an implementation independent of ours, through PySCF.
"""

import numpy as np
import pytest

from densitylab.model1d import lda

# n (bohr⁻¹), ε_x, ε_c (Ha per electron), v_x, v_c (Ha) of the fully polarised gas, from iDEA 1.1
IDEA_VALUES = [
    (0.02, -6.115139569630e-02, -3.826581153967e-03, -1.028026105688e-01, -6.280450605608e-03),
    (0.05, -1.109644311723e-01, -5.998287753636e-03, -1.787953774054e-01, -7.786765964902e-03),
    (0.1, -1.647328692052e-01, -6.377499393423e-03, -2.511171804159e-01, -5.440818200332e-03),
    (0.2, -2.289483454802e-01, -4.798455938440e-03, -3.265256192169e-01, -1.568321627137e-03),
    (0.4, -2.970227495623e-01, -2.551253505359e-03, -3.923309889763e-01, 3.378843198653e-04),
    (0.7, -3.405724108349e-01, -1.238615942688e-03, -3.052636415231e-01, 5.518922427447e-04),
]


def _entwistle_from_the_paper(n):
    """ε_x = (a + bn + cn² + dn³ + en⁴ + fn⁵) n^g; ε_c = −(A r_s + E r_s²)/(1 + B r_s + C r_s² +
    D r_s³) · ln(1 + α r_s + β r_s²)/α with r_s = 1/(2n), the paper's Table I coefficients."""
    a, b, c, d, e, f, g = -1.1511, 3.3440, -9.7079, 19.088, -20.896, 9.4861, 0.73586
    big_a, big_b, big_c, big_d, big_e, alpha, beta = (
        0.0009415195,
        0.2601,
        0.06404,
        0.000248,
        0.00000261,
        1.254,
        28.8,
    )
    rs = 1.0 / (2.0 * n)
    epsilon_x = (a + b * n + c * n**2 + d * n**3 + e * n**4 + f * n**5) * n**g
    epsilon_c = (
        -(big_a * rs + big_e * rs**2)
        / (1.0 + big_b * rs + big_c * rs**2 + big_d * rs**3)
        * np.log(1.0 + alpha * rs + beta * rs**2)
        / alpha
    )
    return epsilon_x, epsilon_c


@pytest.mark.parametrize("values", IDEA_VALUES, ids=lambda v: f"n={v[0]}")
def test_model1d_lda_matches_the_authors_code_and_the_published_formulas(values):
    """Catches a mistyped coefficient, a wrong r_s (1/n instead of 1/(2n)), a sign or the
    wrong derivative v = d(nε)/dn: every value agrees with iDEA and the paper to 1e-10."""
    density, epsilon_x, epsilon_c, v_x, v_c = values
    n = np.array([density])
    assert lda.exchange_energy_density(n)[0] == pytest.approx(epsilon_x, rel=1e-10)
    assert lda.correlation_energy_density(n)[0] == pytest.approx(epsilon_c, rel=1e-10)
    assert lda.exchange_potential(n)[0] == pytest.approx(v_x, rel=1e-10)
    assert lda.correlation_potential(n)[0] == pytest.approx(v_c, rel=1e-10)
    paper_x, paper_c = _entwistle_from_the_paper(density)
    assert paper_x == pytest.approx(epsilon_x, rel=1e-12) and paper_c == pytest.approx(epsilon_c, rel=1e-12)


@pytest.mark.parametrize("spins", ["uu", "ud", "uud"])
def test_model1d_lda_energies_of_a_uniform_gas_follow_the_spin_rules(spins):
    """Catches spin scaling applied to correlation, or exchange evaluated on the total density
    of an unpolarised gas: for uniform spin densities n↑, n↓ on L bohr, E_x = L Σ_σ n_σ ε_x(n_σ)
    and E_c = L n ε_c(n) with the iDEA values above (n↑ = 0.4 or 0.2, n↓ = 0.2 or 0)."""
    table = {row[0]: row for row in IDEA_VALUES}
    up, down = {"uu": (0.4, 0.0), "ud": (0.2, 0.2), "uud": (0.4, 0.2)}[spins]
    points, dx = 50, 0.2
    exchange, correlation = lda.lda_energy(np.full(points, up), np.full(points, down), dx)
    length = points * dx
    expected_x = length * sum(n * table[n][1] for n in (up, down) if n > 0)
    total = up + down
    epsilon_c = table[total][2] if total in table else _entwistle_from_the_paper(total)[1]
    assert exchange == pytest.approx(expected_x, rel=1e-10)
    assert correlation == pytest.approx(length * total * epsilon_c, rel=1e-10)


@pytest.mark.parametrize("density", [0.01, 0.05, 0.1, 0.3, 0.6, 1.0, 2.5])
def test_tdks_alda_correlation_matches_libxc(density):
    """Catches a wrong unit (the fit is in Rydberg), a wrong r_s or coefficient, or a potential
    that is not d(nε_c)/dn in tdks's soft-Coulomb ALDA: ε_c and v_c equal libxc's
    LDA_C_1D_CSC for the unpolarised gas to 1e-10."""
    from pyscf.dft import libxc

    from densitylab.tdks.models import lda_correlation_energy, lda_correlation_potential

    rho = np.array([density])
    epsilon, (v_c, *_), *_ = libxc.eval_xc("LDA_C_1D_CSC", rho, spin=0, deriv=1)
    assert float(lda_correlation_energy(rho)[0]) == pytest.approx(epsilon[0], rel=1e-10)
    assert float(lda_correlation_potential(rho)[0]) == pytest.approx(v_c[0], rel=1e-10)
