"""Distribution metrics of generated images: FID (Heusel et al. 2017) and KID (Binkowski et al.
2018) on Inception-v3 pool features, through torch-fidelity.

The feature network is torch-fidelity's port of the TF Inception graph that the published FID
code uses (so figures compare with papers), with weights from a file the user gives (nothing is
downloaded; see ``translate.metrics.weights.INCEPTION``). Features are the 2048-d pool3
activations of uint8 RGB images resized inside the network to 299x299 (TF1 bilinear), as in
the reference implementation. The statistics and the metrics themselves are torch-fidelity's
``fid_features_to_statistics`` / ``fid_statistics_to_metric`` and ``kid_features_to_metric``
(unbiased MMD^2 with the cubic polynomial kernel; subsets of at most 1000, as published).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from translate.metrics.weights import INCEPTION, load_state_dict

FEATURES = "2048"


class InceptionFeatures:
    """Inception-v3 pool features of PIL images, from a weights file the user gives."""

    def __init__(self, weights: Path, *, device: str = "cpu", batch_size: int = 16):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        load_state_dict(weights, INCEPTION)  # refuses pickled code before torch-fidelity reads it
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", [FEATURES], feature_extractor_weights_path=str(weights)
            ).to(device)
        except RuntimeError as exc:  # load_state_dict: missing or unexpected keys
            from translate.errors import ConfigError

            first = str(exc).splitlines()[0]
            raise ConfigError(f"{weights}: not Inception-v3 FID weights ({first})") from exc
        self.device = device
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, images: Sequence[Image.Image]) -> Tensor:
        """(N, 2048) float32 features."""
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            size = chunk[0].size
            arrays = [np.asarray(im.convert("RGB").resize(size)) for im in chunk]
            x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(self.device)
            (features,) = self.net(x)
            out.append(features.float().cpu())
        return torch.cat(out) if out else torch.zeros(0, int(FEATURES))


def fid(features_a: Tensor, features_b: Tensor) -> float:
    """Frechet distance of two feature sets (torch-fidelity's computation, float64)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    if len(features_a) < 2 or len(features_b) < 2:
        raise ValueError("FID needs at least 2 images per set")
    stats = [fid_features_to_statistics(f.double()) for f in (features_a, features_b)]
    return float(fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"])


def kid(features_a: Tensor, features_b: Tensor, *, subsets: int = 100, seed: int = 0) -> float:
    """Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel), mean over subsets of
    min(1000, the smaller set) features."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = min(1000, len(features_a), len(features_b))
    if size < 2:
        raise ValueError("KID needs at least 2 images per set")
    out = kid_features_to_metric(
        features_a.double(),
        features_b.double(),
        kid_subsets=subsets,
        kid_subset_size=size,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,
        kid_kernel_poly_coef0=1,
        rng_seed=seed,
        verbose=False,
    )
    return float(out["kernel_inception_distance_mean"])
