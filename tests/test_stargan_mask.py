"""StarGAN's mask vector (Choi et al. 2018, Sec. 3.2): one model trained on an attribute
dataset (CelebA style) and a folder-per-domain one (RaFD style) at once, ``--data2``.

By hand on tiny tensors: the labels the data gives ([c_1, c_2, m]), the masked classification
loss (each image's own dataset's labels only), the targets (mask kept, the other dataset zero)
and the inference module's mask; then a run that trains, saves and translates into a domain of
each dataset.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from tests.test_objectives_conditional import binary_cross_entropy_summed, cross_entropy
from tests.test_stargan import make_shapes, trainer
from translate.errors import ConfigError
from translate.inference.translator import Translator
from translate.registry import load_plugin
from translate.testing import make_unpaired


@pytest.fixture
def two_datasets(tmp_path: Path):
    """CelebA style: colour shapes with two attributes; RaFD style: folders A and B."""
    faces = make_shapes(tmp_path / "faces", n=2)
    rows = ["image,Blond_Hair,Young"]
    rows += [f"red/{i:03d}.png,1,{1 - 2 * i}" for i in range(2)]
    rows += [f"blue/{i:03d}.png,-1,1" for i in range(2)]
    (tmp_path / "attrs.csv").write_text("\n".join(rows) + "\n")
    expressions = make_unpaired(tmp_path / "rafd", n=2, size=32)
    plugin = load_plugin("stargan")
    cfg = dataclasses.replace(
        plugin.tiny_config(faces), attributes=tmp_path / "attrs.csv", data2=expressions
    )
    return plugin, plugin.finalize_config(cfg)


def test_labels_are_both_datasets_then_the_mask(two_datasets) -> None:
    plugin, cfg = two_datasets
    assert cfg.domain_names == ["Blond_Hair", "Young", "A", "B"] and cfg.label_size == 6
    dataset = plugin.build_dataset(cfg, "train")
    labels = [dataset[i]["label"].tolist() for i in range(len(dataset))]
    assert labels == [
        [1, 1, 0, 0, 1, 0],  # red/000: Blond_Hair, Young; CelebA's mask
        [1, 0, 0, 0, 1, 0],
        [0, 1, 0, 0, 1, 0],
        [0, 1, 0, 0, 1, 0],
        [0, 0, 1, 0, 0, 1],  # A/...: RaFD's one-hot, its mask
        [0, 0, 1, 0, 0, 1],
        [0, 0, 0, 1, 0, 1],
        [0, 0, 0, 1, 0, 1],
    ]
    models = plugin.build_models(cfg)
    first_conv = next(m for m in models["G"].modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 3 + 6  # G sees the mask
    x = torch.zeros(1, 3, 32, 32)
    assert models["D"](x, with_class=True)[1].shape == (1, 4)  # D classifies the 4 labels


def test_classification_counts_each_images_own_dataset_only(two_datasets) -> None:
    """Eqs. 2-3 with the mask: BCE summed over CelebA's attributes for a CelebA image,
    cross-entropy over RaFD's expressions for a RaFD image, the other part ignored; the mean
    over the batch."""
    plugin, cfg = two_datasets
    logits = torch.tensor(
        [[0.3, -1.2, 2.0, 0.5], [-0.5, 0.1, -3.0, 4.0], [1.0, 2.0, 0.2, -0.7], [0.0, 0.4, 1.5, 1.1]]
    )
    label = torch.tensor(
        [[1.0, 0, 0, 0, 1, 0], [0, 1, 0, 0, 1, 0], [0, 0, 0, 1, 0, 1], [0, 0, 1, 0, 0, 1]]
    )
    celeba = binary_cross_entropy_summed(logits[:2, :2], label[:2, :2])  # mean of 2 images
    rafd = cross_entropy(logits[2:, 2:], torch.tensor([1, 0]))  # mean of 2 images
    expected = (2 * celeba + 2 * rafd) / 4
    assert plugin.classification_loss(logits, label, cfg).item() == pytest.approx(expected.item())


def test_targets_keep_the_mask_and_zero_the_other_dataset(two_datasets) -> None:
    plugin, cfg = two_datasets
    label = torch.tensor(
        [[1.0, 0, 0, 0, 1, 0], [0, 1, 0, 0, 1, 0], [1, 1, 0, 0, 1, 0], [0, 0, 0, 1, 0, 1]]
    )
    torch.manual_seed(0)
    for _ in range(5):
        target = plugin.random_targets(label, cfg)
        assert torch.equal(target[:, 4:], label[:, 4:])  # the mask
        assert torch.equal(target[:3, 2:4], torch.zeros(3, 2))  # CelebA rows: no RaFD label
        assert torch.equal(target[3, :2], torch.zeros(2))  # the RaFD row: no attributes
        assert target[3, 2:4].sum() == 1  # a RaFD one-hot
        # CelebA rows take the attributes of another CelebA row (the authors' code)
        rows = {tuple(r) for r in label[:3, :2].tolist()}
        assert {tuple(r) for r in target[:3, :2].tolist()} == rows


def test_inference_sets_the_mask_from_the_names(two_datasets) -> None:
    plugin, cfg = two_datasets
    seen: list[Tensor] = []

    class Spy(nn.Module):
        def forward(self, x: Tensor, label: Tensor) -> Tensor:
            seen.append(label)
            return x

    module = plugin.inference_module({"G": Spy()}, cfg, None)
    x = torch.zeros(2, 3, 8, 8)
    module(x, torch.tensor([[1.0, 1, 0, 0], [0, 0, 0, 1]]))
    module(x, torch.tensor([[0.0, 0, 0, 0], [1, 0, 1, 0]]))  # mixed: the second dataset wins
    assert seen[0].tolist() == [[1, 1, 0, 0, 1, 0], [0, 0, 0, 1, 0, 1]]
    assert seen[1].tolist() == [[0, 0, 0, 0, 1, 0], [0, 0, 1, 0, 0, 1]]


def test_two_datasets_train_save_and_translate_into_either(two_datasets, tmp_path: Path) -> None:
    plugin, cfg = two_datasets
    out = trainer(cfg, tmp_path / "run", max_steps=2, amp="none").run()
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    results = {}
    for to in ("Blond_Hair,Young", "B"):
        translator = Translator.from_checkpoint(out, options={"to": to})
        results[to] = translator([image])[0]
        assert results[to].size == (32, 32)
    assert results["Blond_Hair,Young"].tobytes() != results["B"].tobytes()
    # a name in both datasets is refused in one line
    (cfg.data2 / "Young").mkdir()
    make_unpaired(tmp_path / "extra", n=1, size=32)
    for p in (tmp_path / "extra" / "A").iterdir():
        p.rename(cfg.data2 / "Young" / p.name)
    with pytest.raises(ConfigError, match=r"domains2: .* repeats the name"):
        plugin.finalize_config(dataclasses.replace(cfg, domains2=""))
