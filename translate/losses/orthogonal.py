"""BigGAN's orthogonal regularisation of generator weights (Brock et al. 2019, Sec. 3.1, Eq. 3).

``R_beta(W) = beta * || W W^T * (1 - I) ||_F^2`` for every weight with at least two dimensions,
viewed as ``W`` of shape (rows = ``shape[0]``, columns = the rest): it pushes the filters
towards orthogonality without constraining their norms (only the off-diagonal entries of the
Gram matrix are penalised), which makes G amenable to the truncation trick. Its gradient is
``4 beta (W W^T * (1 - I)) W``. (BigGAN-PyTorch adds ``2 beta (W W^T * (1 - I)) W`` to the
gradients directly, i.e. half the paper's Eq. 3; we follow the paper, ``beta = 1e-4``.)

The engine adds the term to a generator group's loss before its backward
(``translate.engine.context.TrainContext``), so it goes through the same gradient scaling
(fp16), DDP all-reduce and optimiser step as the adversarial loss, and resume needs no state.
Parameters a network names in ``no_ortho_parameters()`` are exempt (BigGAN: the shared class
embedding), as are biases and norm gains (one dimension).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

__all__ = ["ortho_parameters", "orthogonal_regularization"]


def orthogonal_regularization(weights: Iterable[Tensor]) -> Tensor:
    """``sum_W || W W^T * (1 - I) ||_F^2`` (unweighted), computed in float32."""
    total: Tensor | None = None
    for weight in weights:
        w = weight.float().reshape(weight.shape[0], -1)
        gram = w @ w.T
        off = gram - torch.diag_embed(torch.diagonal(gram))  # W W^T * (1 - I)
        term = off.pow(2).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total


def ortho_parameters(
    params: Iterable[nn.Parameter], models: Mapping[str, nn.Module]
) -> list[nn.Parameter]:
    """The regularised parameters among ``params``: at least two dimensions, not named exempt
    by a module's ``no_ortho_parameters()``."""
    exempt: set[int] = set()
    for model in models.values():
        for module in model.modules():
            named = getattr(module, "no_ortho_parameters", None)
            if callable(named):
                exempt.update(id(p) for p in named())
    return [p for p in params if p.ndim >= 2 and id(p) not in exempt]
