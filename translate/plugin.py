"""The plugin contract: THE stable surface between translate's core and model families.

A plugin is an object exposed through the ``translate.plugins`` entry-point group::

    [project.entry-points."translate.plugins"]
    pix2pix = "translate_pix2pix:plugin"

It describes one model family: its config dataclass, the networks it builds, the GAN step it
takes, and how images go in and out. The engine owns everything else (devices, optimisers,
mixed precision, checkpoints, the loop). Importing the module that defines ``plugin`` must be
cheap: no torch at import time (``translate plugins`` loads every plugin to list it), so heavy
imports go inside methods.

Tensor conventions, enforced at the boundaries: NCHW float tensors; generator inputs and
outputs in [-1, 1]; the public API takes and returns PIL images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image
    from torch import Tensor, nn
    from torch.utils.data import Dataset

    from translate.data.pool import ImagePool
    from translate.losses.objective import GANObjective

API_VERSION = 1

DatasetKind = Literal["paired", "unpaired", "single", "labels"]
DATASET_KINDS: tuple[str, ...] = ("paired", "unpaired", "single", "labels")

C = TypeVar("C")


@dataclass(frozen=True)
class SizeRequirements:
    """What input sizes the inference module accepts; the runner pads and crops to fit."""

    multiple_of: int = 1  # e.g. 2**depth for a U-Net
    minimum: int = 1  # smallest side length (after padding)
    scale: int = 1  # output size / input size (super-resolution)


@dataclass(frozen=True)
class ConditionInput:
    """A conditioning vector that a plugin's inference module takes after its image (or
    latent): one (B, len(names)) float32 input per declared condition.

    The user picks it by name through an option (``--to blond`` for stargan's target domain,
    ``--class 7`` for cgan's class, ``--code c=3 --code c1=0.5`` for InfoGAN's codes), so one
    module, one ONNX file and one served model cover every value; ``translate.conditioning``
    encodes names into vectors and the ONNX metadata stores these fields (``conditions``), so
    an exported model is fed the same way.

    Three kinds: a one-hot over ``names`` (a class, a domain, a categorical code), a multi-hot
    (``multi``: attributes), or real values (``continuous``: one per entry of ``names``, drawn
    from U(low, high) when not given; a user may give values up to one prior width beyond that
    range, as the InfoGAN paper's traversals do, Fig. 2: -2 to 2 for codes drawn in -1 to 1).
    """

    name: str  # the module's argument and the ONNX input's name, e.g. "label"
    #: the option that names the value: an inference option ("to"), sample's "class", or
    #: "code" (``--code NAME=VALUE``, the input picked by its ``name``)
    option: str
    names: tuple[str, ...]  # what each entry means: domains, attributes, classes, code entries
    multi: bool = False  # several entries at once (attributes: a multi-hot), else a one-hot
    noun: str = "value"  # what errors call an entry ("domain", "class")
    #: A code drawn from a distribution instead of entries picked by name (the many answers
    #: of a multimodal family: bicyclegan's z, munit's style): "normal" is N(0, I) with
    #: ``dim`` entries, not limited to [0, 1]. ``translate run --samples K --seed S`` draws K
    #: codes, ``--style-from`` takes the plugin's ``code_encoder`` output; the option, if
    #: given, is comma-separated numbers. "" (default): a named one-hot or multi-hot.
    distribution: str = ""
    dim: int = 0
    continuous: bool = False  # real values, one per entry (InfoGAN's continuous codes)
    low: float = 0.0  # a continuous input's prior: U(low, high) per entry
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.distribution not in ("", "normal"):
            raise ValueError(
                f"ConditionInput.distribution: '' or 'normal', not {self.distribution!r}"
            )
        if self.distribution and (self.dim < 1 or self.names):
            raise ValueError("ConditionInput: a code takes dim >= 1 and no names")

    @property
    def is_code(self) -> bool:
        return bool(self.distribution)

    @property
    def size(self) -> int:
        return self.dim if self.is_code else len(self.names)


@dataclass(frozen=True)
class NoOptions:
    """Inference options of a plugin that has none."""


class StepContext(Protocol):
    """What the engine hands to ``Plugin.train_step``; plugins only call it."""

    models: Mapping[str, nn.Module]
    step: int
    device: torch.device
    gan: GANObjective  # the configured adversarial objective + regularisers
    #: False on the critic-only steps of ``--n-critic N`` (N - 1 of every N steps). The engine
    #: then ignores ``optimize`` of every group not starting with "D", so a plugin is correct
    #: without looking; it should still skip its generator update (and run G under no_grad)
    #: when this is False, to save the work.
    update_generator: bool

    def autocast(self) -> AbstractContextManager[None]:
        """Mixed-precision context for forward passes (a no-op when AMP is off)."""

    def frozen(self, *names: str) -> AbstractContextManager[None]:
        """Inside, the named models' parameters do not require gradients."""

    def optimize(self, group: str, loss: Tensor) -> None:
        """zero_grad, (scaled) backward and step of the optimiser of ``group``."""

    def accumulate(self, group: str) -> AbstractContextManager[Callable[[Tensor], None]]:
        """``optimize`` for a loss in parts: zero_grad on entry, the yielded ``backward(loss)``
        accumulates each part's gradients, one step on exit. Backpropagate a part as soon as it
        is computed and its graph is freed before the next part is built (peak memory)."""

    def image_pool(self, name: str, size: int) -> ImagePool:
        """A history buffer of generated images (Shrivastava 2017), checkpointed by the engine."""


class Plugin(Protocol[C]):
    """The full contract; ``PluginBase`` supplies defaults for everything but the model."""

    name: ClassVar[str]
    api_version: ClassVar[int]
    config_cls: type[C]
    inference_config_cls: type
    dataset_kind: ClassVar[DatasetKind]

    def build_models(self, cfg: C) -> dict[str, nn.Module]: ...
    def param_groups(self, models: Mapping[str, nn.Module]) -> dict[str, list[nn.Parameter]]: ...
    def build_dataset(self, cfg: C, split: str) -> Dataset: ...
    def train_step(self, ctx: StepContext, batch: Any, cfg: C) -> dict[str, float]: ...
    def inference_module(self, models: Mapping[str, nn.Module], cfg: C, opts: Any) -> nn.Module: ...
    def size_requirements(self, cfg: C) -> SizeRequirements: ...
    def preprocess(self, images: list[Image.Image], cfg: C) -> Tensor: ...
    def postprocess(self, output: Tensor, cfg: C) -> list[Image.Image]: ...
    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: C
    ) -> list[Tensor]: ...


REQUIRED_ATTRIBUTES = ("name", "api_version", "config_cls", "dataset_kind")
REQUIRED_METHODS = (
    "build_models",
    "param_groups",
    "build_dataset",
    "train_step",
    "inference_module",
    "size_requirements",
    "preprocess",
    "postprocess",
    "sample_columns",
)


class PluginBase(Generic[C]):
    """Defaults for the contract: one optimiser per model, RGB <-> [-1, 1], image datasets.

    A pix2pix-like plugin sets ``name``, ``config_cls``, ``dataset_kind`` and writes
    ``build_models``, ``train_step`` and ``inference_module``.
    """

    name: ClassVar[str]
    api_version: ClassVar[int] = API_VERSION
    config_cls: type[C]
    inference_config_cls: type = NoOptions
    dataset_kind: ClassVar[DatasetKind]
    description: ClassVar[str] = ""
    #: A generator of new images (dcgan) rather than a translator of given ones: its inference
    #: module maps a latent (B, *latent_shape(cfg)) drawn from N(0, I) to images (B, 3, H, W)
    #: in [-1, 1]; ``translate sample`` uses it, and its ONNX export takes the latent as input.
    generates: ClassVar[bool] = False
    #: A generating plugin that also maps images back to its latents (bigan's encoder E):
    #: ``translate encode`` writes ``encoder_module``'s latents, ``translate run`` returns the
    #: reconstruction G(E(x)), ``translate export --encoder`` exports E.
    encodes: ClassVar[bool] = False
    #: Distributed training: whether some backward pass of an optimiser group leaves some of
    #: its parameters without a gradient (a loss that reaches one generator of two, layers of
    #: another resolution). DDP then traverses each backward's graph to mark them
    #: (``find_unused_parameters``), which costs a little per step and warns when nothing is
    #: unused; a plugin whose every loss reaches every parameter of its group declares False.
    #: ``tests/test_ddp_unused.py`` measures it for every discovered plugin.
    ddp_unused_parameters: ClassVar[bool] = True
    #: Per-plugin defaults for the core configs (e.g. the paper's objective and step count).
    train_defaults: ClassVar[Mapping[str, Any]] = {}
    gan_defaults: ClassVar[Mapping[str, Any]] = {}

    # -- initialisation
    def initialize(self, models: Mapping[str, nn.Module], cfg: C) -> None:
        """Starting weights of a fresh run (not called on resume, nor for inference), after
        ``build_models`` and the engine's GAN transforms; e.g. load a pretrained generator.
        Optional: the default keeps ``build_models``' initialisation."""

    # -- configuration
    def config_gan_defaults(self, cfg: C) -> Mapping[str, Any]:
        """``GANConfig`` defaults that depend on the plugin's config (stylegan2: R1's gamma by
        resolution), applied over ``gan_defaults`` where the user gave none. Optional: the
        default adds none."""
        return {}

    def config_train_defaults(self, cfg: C) -> Mapping[str, Any]:
        """``TrainConfig`` defaults that depend on the plugin's config (superres: its GAN
        phase's learning rate), applied over ``train_defaults`` where the user gave none.
        Optional: the default adds none."""
        return {}

    def finalize_config(self, cfg: C) -> C:
        """Complete a new run's config from its data before anything is built (e.g.
        label2image estimates its palette); called once per run, not on resume, and the
        result is what the checkpoint stores. Optional: the default returns ``cfg``."""
        return cfg

    # -- optimisation
    def param_groups(self, models: Mapping[str, nn.Module]) -> dict[str, list[nn.Parameter]]:
        """One optimiser per model by default; names starting with "D" get ``lr_d`` (TTUR)."""
        return {name: list(model.parameters()) for name, model in models.items()}

    def lr_multiplier(self, step: int, cfg: C) -> float:
        """A factor on every group's learning rate at ``step`` (0-based), times the core's
        schedule (``lr_decay_start``); computed from the step alone, so resume is exact.
        MUNIT's configs halve the rate every 100k steps. Optional: the default is 1."""
        return 1.0

    # -- data
    def build_dataset(self, cfg: C, split: str) -> Dataset:
        """The default dataset of the plugin's ``dataset_kind`` (``translate.data``), built
        from the config's data fields (``translate.data.configs``: extend the kind's config
        class); None for a split the data lacks. Override it for any other data."""
        from translate.data import build_dataset

        return build_dataset(self.dataset_kind, cfg, split)

    # -- inference
    def size_requirements(self, cfg: C) -> SizeRequirements:
        return SizeRequirements()

    def option_choices(self, cfg: C) -> Mapping[str, Sequence[str]]:
        """Values of free-form inference options that a model's config fixes (stargan: its
        domains for ``to``); the service lists them and its page offers them as a choice.
        Optional: the default names none."""
        return {}

    def latent_shape(self, cfg: C) -> tuple[int, ...]:
        """Shape of one latent of a generating plugin (``generates``), e.g. (Z, 1, 1)."""
        raise NotImplementedError(f"plugin {self.name} does not generate from a latent")

    def latent_prior(self, cfg: C) -> Literal["normal", "uniform"]:
        """What a generating plugin's latents are drawn from: ``normal``, N(0, I) (truncation
        applies), or ``uniform``, U(-1, 1) per entry (BiGAN's). Optional: normal."""
        return "normal"

    def encoder_module(self, models: Mapping[str, nn.Module], cfg: C) -> nn.Module:
        """An encoding plugin's (``encodes``) E: images (B, 3, S, S) in [-1, 1], S =
        ``encoder_size(cfg)``, -> latents (B, *latent_shape(cfg)) that the inference module
        takes, so that inference_module(encoder_module(x)) is the reconstruction G(E(x))."""
        raise NotImplementedError(f"plugin {self.name} has no encoder")

    def encoder_size(self, cfg: C) -> int:
        """The side of the square images ``encoder_module`` takes (inputs are resized to it)."""
        raise NotImplementedError(f"plugin {self.name} has no encoder")

    def truncated(self, module: nn.Module, truncation: float, cfg: C) -> nn.Module | None:
        """A generating plugin's own truncation trick: ``module`` (its inference module)
        sampling at ``truncation`` (stylegan2: psi in W). Optional: the default, None, leaves
        truncation to the core (latent entries with |z| > T resampled)."""
        return None

    def condition_inputs(self, cfg: C) -> tuple[ConditionInput, ...]:
        """Conditioning vectors the inference module takes after its image or latent, in
        order (stargan: the target label; cgan: the class one-hot): its forward is then
        ``forward(x, *vectors)`` with each vector (B, size). Run, export, serve and sample feed
        them from the user's option (``ConditionInput.option``); the ONNX export takes each as
        an input of its own. Optional: the default declares none (a single-input module)."""
        return ()

    def code_encoder(self, models: Mapping[str, nn.Module], cfg: C, opts: Any) -> nn.Module | None:
        """For a plugin with a code input (``ConditionInput.distribution``): a module mapping
        a reference image (B, C, H, W) in [-1, 1] to its code (B, dim), the mean for a VAE
        encoder; ``translate run --style-from`` uses it. Optional: the default has none."""
        return None

    def text_encoder(self, models: Mapping[str, nn.Module], cfg: C) -> nn.Module | None:
        """A text-conditioned plugin's (a condition input with option ``prompt``): its text
        encoder among ``models`` as a module with ``vocabulary``, ``max_words``, forward(tokens
        (B, L) int64, lengths (B,) int64) -> the text vectors (B, size) and ``encode(prompts)``
        (``translate.text.encoder.PromptEncoder``). ``translate sample --prompt`` and the
        service's ``prompt`` encode by it; ``translate export`` writes it as its own graph
        (``translate.loading.text_encoder``). Optional: the default (and a model that holds no
        text encoder) has none."""
        return None

    def input_channels(self, cfg: C) -> int:
        """Channels of ``preprocess``'s output (of the latent for a generating plugin).
        Optional: the default probes ``preprocess`` with a blank RGB image; a plugin whose
        preprocess refuses that image overrides it."""
        from PIL import Image

        if self.generates and not self.encodes:  # an encoding plugin also takes images
            return self.latent_shape(cfg)[0]

        req = self.size_requirements(cfg)
        side = -(-max(req.minimum, req.multiple_of, 8) // req.multiple_of) * req.multiple_of
        return int(self.preprocess([Image.new("RGB", (side, side))], cfg).shape[1])

    def preprocess(self, images: list[Image.Image], cfg: C) -> Tensor:
        """PIL images of one size -> (B, 3, H, W) in [-1, 1]."""
        from translate.inference.image_io import pil_to_tensor

        return pil_to_tensor(images)

    def postprocess(self, output: Tensor, cfg: C) -> list[Image.Image]:
        """(B, 3, H, W) in [-1, 1] -> PIL RGB images."""
        from translate.inference.image_io import tensor_to_pil

        return tensor_to_pil(output)

    def sample_columns(self, models: Mapping[str, nn.Module], batch: Any, cfg: C) -> list[Tensor]:
        """Columns of the sample grid, each (B, 3, H, W) in [-1, 1], from a validation batch
        of the default dataset: input | output | target (``paired``, ``labels``), A | output
        (``unpaired``), image | output (``single``). Override it when the inference module's
        input is not the batch's image (e.g. it takes a grayscale copy) or for other keys."""
        module = self.inference_module(models, cfg, self.inference_config_cls())
        if self.dataset_kind == "single":
            return [batch["image"], module(batch["image"])]
        if self.dataset_kind == "unpaired":
            return [batch["A"], module(batch["A"])]
        return [batch["input"], module(batch["input"]), batch["target"]]

    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: C, opts: Any
    ) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def tiny_config(self, data_root: Path) -> C:
        """A config that trains two steps on CPU in about a second on the data that
        ``translate.testing.make_dataset(self.dataset_kind, ...)`` writes (contract tests)."""
        raise NotImplementedError(f"plugin {self.name} has no tiny_config for contract tests")


def plugin_fields(plugin: Any) -> Iterator[dataclasses.Field[Any]]:
    """The fields of a plugin's config dataclass."""
    yield from dataclasses.fields(plugin.config_cls)
