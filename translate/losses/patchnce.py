"""PatchNCE: the multilayer, patch-wise contrastive loss of CUT.

Park, Efros, Zhang, Zhu, "Contrastive Learning for Unpaired Image-to-Image Translation", ECCV
2020, Sec. 3. An output patch should be closer to the input patch at the same location than to
the input's other patches. For layer ``l`` of the generator's encoder, ``S`` patch locations are
sampled (shared by the input's and the output's features, and by the images of a batch); each
feature vector goes through a small MLP ``H_l`` and is L2-normalised; with ``z = H_l(G_enc(x))``
(keys, from the input) and ``ẑ = H_l(G_enc(G(x)))`` (queries, from the output), Eq. 2 and 3::

    l(v, v+, v-) = -log( exp(v . v+ / tau) / (exp(v . v+ / tau) + sum_n exp(v . v-_n / tau)) )
    L_PatchNCE = mean over layers l of the mean over images and locations s of
                 l(ẑ_l^s, z_l^s, z_l^{S \\ s})

a cross-entropy over ``S`` logits with the positive at index 0. The negatives are the other
``S - 1`` keys of the *same image* (the paper's "internal" negatives; the batch's other images
never enter an image's loss). As in the official code, keys are detached (the generator and the
heads learn through the queries only), the key of the query's own location is masked out of the
negatives by setting its logit to -10 / tau, and a vector is divided by its norm plus 1e-7.

``PatchNCEHeads`` holds the heads ``H_l``: ``Linear(C_l, 256), ReLU, Linear(256, 256)`` (Sec. 3.2,
the official ``--netF mlp_sample --netF_nc 256``). The official code creates them lazily at the
first batch, from its features' channels; here they are built at once from the channels
(``PatchNCEHeads.for_features`` takes them from one dry forward at build time), so checkpoints,
optimisers, DDP and EMA see every parameter from the start and a checkpoint loads without a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: The logit of the masked-out negative at the query's own location, before the temperature
#: (the official code's value: exp(-10 / 0.07) is 0 in any float precision).
MASKED_LOGIT = -10.0


def l2_normalize(x: Tensor, *, eps: float = 1e-7) -> Tensor:
    """``x / (||x||_2 + eps)`` along the last dimension."""
    return x / (x.norm(p=2, dim=-1, keepdim=True) + eps)


def sample_locations(
    features: Sequence[Tensor], num_patches: int, *, generator: torch.Generator | None = None
) -> list[Tensor]:
    """For each feature map (B, C, H, W): ``min(num_patches, H * W)`` distinct flat locations
    drawn uniformly without replacement (on the CPU, from ``generator`` or torch's global
    stream, which training checkpoints), shared by every image of the batch."""
    ids = []
    for f in features:
        n = f.shape[2] * f.shape[3]
        ids.append(torch.randperm(n, generator=generator)[: min(num_patches, n)].to(f.device))
    return ids


def gather_patches(feature: Tensor, ids: Tensor) -> Tensor:
    """(B, C, H, W) and S flat locations -> (B * S, C): image-major, then location."""
    b, c = feature.shape[:2]
    flat = feature.flatten(2).transpose(1, 2)  # (B, H * W, C)
    return flat[:, ids].reshape(b * len(ids), c)


class PatchNCEHeads(nn.Module):
    """One 2-layer MLP per feature layer (``H_l``, Sec. 3.2), applied to sampled patches and
    followed by L2 normalisation.

    Args:
        channels: the channels ``C_l`` of each layer's features, in order.
        units: width of both linear layers (paper: 256).
    """

    def __init__(self, channels: Sequence[int], units: int = 256) -> None:
        super().__init__()
        if not channels or any(c < 1 for c in channels) or units < 1:
            raise ValueError(f"channels and units must be positive, got {channels}, {units}")
        self.channels, self.units = tuple(int(c) for c in channels), int(units)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, units), nn.ReLU(), nn.Linear(units, units))
            for c in self.channels
        )

    @classmethod
    def for_features(cls, features: Sequence[Tensor], units: int = 256) -> PatchNCEHeads:
        """Heads for features of these shapes (e.g. an encoder's output on a dummy input)."""
        return cls([f.shape[1] for f in features], units)

    def forward(self, features: Sequence[Tensor], ids: Sequence[Tensor]) -> list[Tensor]:
        """Per layer: the patches at ``ids`` (B * S, C_l) -> normalised embeddings (B * S, units),
        in float32 (the loss's dot products and temperature want the precision)."""
        if len(features) != len(self.mlps) or len(ids) != len(self.mlps):
            raise ValueError(f"{len(self.mlps)} heads, {len(features)} feature maps")
        return [
            l2_normalize(mlp(gather_patches(f, i)).float())
            for mlp, f, i in zip(self.mlps, features, ids, strict=True)
        ]


def patchnce_loss(query: Tensor, key: Tensor, *, batch_size: int, temperature: float) -> Tensor:
    """Eq. 2 for every query: (B * S, D) queries and keys, image-major -> (B * S,) losses.

    Query ``i`` of image ``b`` is scored against key ``i`` (the positive, logit index 0) and the
    other keys of image ``b`` only; ``key`` is detached.
    """
    if query.shape != key.shape or query.dim() != 2 or query.shape[0] % batch_size:
        raise ValueError(f"query {tuple(query.shape)} and key {tuple(key.shape)} do not match")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    key = key.detach()
    dim = query.shape[1]
    q = query.reshape(batch_size, -1, dim)  # (B, S, D)
    k = key.reshape(batch_size, -1, dim)
    s = q.shape[1]
    positive = (q * k).sum(-1, keepdim=True)  # (B, S, 1)
    negative = q @ k.transpose(1, 2)  # (B, S, S): query i against every key of its image
    own = torch.eye(s, dtype=torch.bool, device=q.device)
    negative = negative.masked_fill(own, MASKED_LOGIT)
    logits = torch.cat([positive, negative], dim=2).reshape(-1, s + 1) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=q.device)
    return nn.functional.cross_entropy(logits, target, reduction="none")


def multilayer_patchnce(
    heads: PatchNCEHeads,
    query_features: Sequence[Tensor],
    key_features: Sequence[Tensor],
    *,
    num_patches: int,
    temperature: float,
) -> Tensor:
    """Eq. 3: PatchNCE between the output's features (queries) and the input's (keys), the
    mean over layers of each layer's mean over images and sampled locations. The locations are
    drawn once per call and shared by queries and keys."""
    ids = sample_locations(key_features, num_patches)
    keys = heads(key_features, ids)
    queries = heads(query_features, ids)
    batch = key_features[0].shape[0]
    losses = [
        patchnce_loss(q, k, batch_size=batch, temperature=temperature).mean()
        for q, k in zip(queries, keys, strict=True)
    ]
    return torch.stack(losses).mean()
