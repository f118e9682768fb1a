"""Check `translate import reference` against the reference's own networks (needs ../shared).

For every generator type of pytorch-CycleGAN-and-pix2pix (unet_128, unet_256, resnet_6blocks,
resnet_9blocks; batch, instance and no norm; with and without dropout) this builds the
reference's ``define_G`` network with random weights (batch-norm statistics included), saves its
``state_dict`` as the reference does, imports the file with ``translate.loading``, and prints the
largest difference between the reference network's eval-mode output and ours (``run`` on the
imported checkpoint folder, and the file loaded directly). It also checks that
``tests/reference_layout.py`` (what the unit tests use instead of the reference) lays out
exactly the keys and shapes of the reference's state dicts.

    python benchmarks/reference_import.py [--reference DIR]   # DIR: the reference sources
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5
REFERENCE = Path("reference/pytorch-CycleGAN-and-pix2pix")


def randomise(net: torch.nn.Module, seed: int) -> None:
    """Random values for every tensor, so that no layer is an identity by default."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith("weight") and t.dim() == 1:
                t.copy_(1 + 0.2 * torch.randn(t.shape, generator=gen))
            else:
                t.copy_(0.2 * torch.randn(t.shape, generator=gen) / max(1, t[0].numel()) ** 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    found = [p / "shared" / REFERENCE for p in ROOT.parents if (p / "shared" / REFERENCE).is_dir()]
    default = found[0] if found else Path("../shared") / REFERENCE
    parser.add_argument("--reference", type=Path, default=default)
    parser.add_argument("--ngf", type=int, default=16, help="width of the small-width checks")
    args = parser.parse_args()
    sys.path.insert(0, str(args.reference))
    sys.path.insert(0, str(ROOT / "tests"))
    from models.networks import define_G  # the reference's own networks
    from reference_layout import reference_state_dict

    from translate.inference.translator import Translator
    from translate.loading import load
    from translate.loading.importing import import_reference

    torch.manual_seed(0)
    cases = [
        (net_g, norm, dropout, args.ngf)
        for net_g in ("unet_128", "unet_256", "resnet_6blocks", "resnet_9blocks")
        for norm in ("batch", "instance", "none")
        for dropout in (False, True)
    ]
    cases += [("resnet_9blocks", "instance", False, 64), ("unet_256", "batch", True, 64)]
    print(f"{'netG':15} {'norm':9} {'dropout':8} {'ngf':>4} {'layout':7} "
          f"{'max|diff| run':>14} {'max|diff| file':>15} {'output std':>11}")  # fmt: skip
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (net_g, norm, dropout, ngf) in enumerate(cases):
            ref = define_G(3, 3, ngf, net_g, norm=norm, use_dropout=dropout)
            randomise(ref, i)
            ref.eval()
            ours_layout = reference_state_dict(net_g, norm, dropout=dropout, ngf=ngf)
            layout_ok = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()] == [
                (k, tuple(v.shape)) for k, v in ours_layout.items()
            ]
            name = "latest_net_G_A.pth" if net_g.startswith("resnet") else "latest_net_G.pth"
            model = "cycle_gan" if net_g.startswith("resnet") else "pix2pix"
            file = Path(tmp) / f"case{i}" / name
            file.parent.mkdir()
            torch.save(ref.state_dict(), file)
            folder = import_reference(
                [file], Path(tmp) / f"run{i}", model=model, net_g=net_g, norm=norm,
                dropout=dropout,
            )  # fmt: skip
            side = 128 if net_g == "unet_128" else 256 if net_g == "unet_256" else 64
            x = torch.rand(2, 3, side, side) * 2 - 1
            with torch.inference_mode():
                want = ref(x)
            run = Translator.from_checkpoint(folder, device="cpu", tile_size=0)
            got_run = run.translate_tensor(x)
            direct = load(file, device="cpu")
            with torch.inference_mode():
                got_file = direct.module(x)
            d_run = float((got_run - want).abs().max())
            d_file = float((got_file - want).abs().max())
            worst = max(worst, d_run, d_file)
            print(f"{net_g:15} {norm:9} {dropout!s:8} {ngf:4d} {'same' if layout_ok else 'DIFF':7} "
                  f"{d_run:14.2e} {d_file:15.2e} {float(want.std()):11.3f}")  # fmt: skip
            if not layout_ok:
                raise SystemExit(f"tests/reference_layout.py differs from the reference: {net_g}")
    verdict = "OK" if worst <= TOLERANCE else "FAILED"
    print(f"largest difference {worst:.2e} (tolerance {TOLERANCE:.0e}): {verdict}")
    if worst > TOLERANCE:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
