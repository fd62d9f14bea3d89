"""Time-dependent Kohn–Sham: learning the correlation potential through adjoint
(checkpointed reverse-mode) gradients of KS propagation. Built on :mod:`densitylab.model1d`.
See docs/tdks.md."""
