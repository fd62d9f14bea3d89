"""The two-site (Hubbard-dimer) limit of 1-RDM learning (Wetherell et al. 2020, section 4).

On a 2-point grid a singlet 1-RDM is fixed by (n₁, n₂, γ₁₂), with n₁ + n₂ = 2/dx. Without
interaction γ₁₂ = √(n₁ n₂) exactly. Two models of γ₁₂[n]:

* :func:`fit_log_perceptron`: one neuron with logarithmic inputs and exponential output,
  γ₁₂ = exp(b) n₁^a₁ n₂^a₂. Its least-squares optimum in log space is a linear problem,
  solved exactly here rather than by gradient descent. On non-interacting data it must learn
  a₁ = a₂ = ½ and b = 0; on interacting data the exponents show how correlation bends the
  √(n₁ n₂) law.
* :func:`train_c_model`: γ₁₂ = c(n₁, n₂)·√(n₁ n₂), with c ∈ (0, 1] from a small MLP
  (sigmoid output). c = 1 is the non-interacting limit, and c < 1 is correlation reducing
  coherence between the sites. The form obeys |γ₁₂| ≤ √(n₁ n₂) (Cauchy–Schwarz for a PSD γ)
  by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densitylab.errors import require


@dataclass(frozen=True)
class LogPerceptron:
    """γ₁₂ = exp(bias) · n₁^exponents[0] · n₂^exponents[1]."""

    exponents: tuple[float, float]
    bias: float

    def __call__(self, density: np.ndarray) -> np.ndarray:
        return np.exp(self.bias + np.log(density) @ np.asarray(self.exponents))


def _dimer_inputs(density: np.ndarray, rdm1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    density, rdm1 = np.asarray(density, dtype=float), np.asarray(rdm1, dtype=float)
    require(
        density.ndim == 2 and density.shape[1] == 2,
        "density",
        "two-site densities of shape (S, 2)",
        density.shape,
    )
    require(bool(np.all(density > 0)), "density", "positive site occupations")
    coherence = rdm1[:, 0, 1]
    require(
        bool(np.all(coherence > 0)), "rdm1", "positive off-diagonal elements γ₁₂ (a log model needs them)"
    )
    return density, coherence


def fit_log_perceptron(density: np.ndarray, rdm1: np.ndarray) -> LogPerceptron:
    """Least squares of log γ₁₂ on (log n₁, log n₂, 1): the optimum of a one-neuron log perceptron."""
    density, coherence = _dimer_inputs(density, rdm1)
    design = np.column_stack([np.log(density), np.ones(len(density))])
    solution, *_ = np.linalg.lstsq(design, np.log(coherence), rcond=None)
    return LogPerceptron(exponents=(float(solution[0]), float(solution[1])), bias=float(solution[2]))


def train_c_model(density: np.ndarray, rdm1: np.ndarray, width: int = 64, steps: int = 6000, seed: int = 0):
    """Fit c(n₁, n₂) ∈ (0, 1] so that γ₁₂ = c·√(n₁ n₂); returns a callable density → γ₁₂.

    The loss is the mean squared error of log γ₁₂ (relative errors), because in the
    correlated regime γ₁₂ spans orders of magnitude; an absolute loss underfits the small
    values (held-out relative error 64 % against 18 % measured on the default family).
    """
    import optax

    from densitylab.jaxsetup import jax_modules
    from densitylab.training import optax_loop

    jax, jnp, eqx = jax_modules()

    density, coherence = _dimer_inputs(density, rdm1)
    scale = density.sum(axis=1).mean()  # = 2/dx: inputs are occupations n_i dx / 2 ∈ (0, 1)
    mlp = eqx.nn.MLP(2, 1, width, 2, activation=jnp.tanh, key=jax.random.PRNGKey(seed))

    def predict(model, n):
        c = jax.nn.sigmoid(jax.vmap(model)(n / scale)[:, 0] + 4.0)  # starts near c = 1 (no correlation)
        return c * jnp.sqrt(n[:, 0] * n[:, 1])

    inputs, targets = jnp.asarray(density), jnp.asarray(coherence)
    optimiser = optax.adam(optax.cosine_decay_schedule(3e-3, steps, alpha=1e-2))
    mlp = optax_loop(lambda m: jnp.mean((predict(m, inputs) - targets) ** 2), mlp, optimiser, steps)
    return lambda n: np.asarray(predict(mlp, jnp.asarray(np.asarray(n, dtype=float))))


def dimer_study(
    density: np.ndarray,
    rdm1: np.ndarray,
    free_density: np.ndarray,
    free_rdm1: np.ndarray,
    test_fraction: float = 0.2,
    seed: int = 0,
    steps: int = 6000,
) -> tuple[dict, dict]:
    """The whole study on a 2-point dataset: log-perceptron exponents for the non-interacting
    and the interacting γ₁₂, and the held-out errors of √(n₁n₂), the log perceptron and the
    c-model."""
    from densitylab.rdm.pca import split

    train, test = split(len(density), test_fraction, seed)
    free = fit_log_perceptron(free_density[train], free_rdm1[train])
    interacting = fit_log_perceptron(density[train], rdm1[train])
    c_model = train_c_model(density[train], rdm1[train], steps=steps, seed=seed)
    exact = rdm1[test][:, 0, 1]
    baseline = np.sqrt(density[test][:, 0] * density[test][:, 1])

    def mae(values: np.ndarray) -> float:
        return float(np.mean(np.abs(values - exact)))

    curves = {
        "n1": density[test][:, 0],
        "exact": exact,
        "sqrt": baseline,
        "log_perceptron": interacting(density[test]),
        "c_model": c_model(density[test]),
    }
    summary = {
        "log_perceptron_noninteracting": {"exponents": free.exponents, "bias": free.bias},
        "log_perceptron_interacting": {"exponents": interacting.exponents, "bias": interacting.bias},
        "held_out_mae_gamma12": {
            "sqrt": mae(baseline),
            "log_perceptron": mae(curves["log_perceptron"]),
            "c_model": mae(curves["c_model"]),
        },
        "held_out_relative_error_gamma12": {
            key: float(np.mean(np.abs(curves[key] - exact) / exact))
            for key in ("sqrt", "log_perceptron", "c_model")
        },
        "mean_gamma12": float(np.mean(exact)),
        "systems": {"train": len(train), "test": len(test)},
    }
    return summary, curves
