"""Nothing lost, one clear line: the bad values and outputs of issue 32's drill (rows 5, 8-15),
one test per row, on real files made here. Rows 1-4, 6, 7, 12 are in ``test_reliability.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.test_reliability import trained as trained
from tests.test_run_files import error_line
from translate.cli.main import app

runner = CliRunner()

TOO_BIG = str(2**64)


def only_line(result: object, *needles: str, code: int = 2) -> str:
    """The whole output is one ``error:`` line (click's boxed panel was six)."""
    line = error_line(result, *needles, code=code)
    assert result.output.strip() == line, result.output  # type: ignore[attr-defined]
    return line


# ---------------------------------------------------------------------------- bad values
def test_row09_seed_of_2_64_and_every_int_option_out_of_range(
    trained: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """A seed of 2**64 was an overflow traceback: now one line, on the command line and in a
    config file; and every integer option of every command is range-checked the same way."""
    import typer

    from translate.config import GANConfig, TrainConfig, field_types
    from translate.registry import load_plugin

    data, run_dir = trained
    train = ["train", "pix2pix", "--data", str(data), "--run-dir", str(tmp_path / "new")]
    only_line(runner.invoke(app, [*train, "--seed", TOO_BIG]), "seed:", "out of range")
    config = tmp_path / "options.json"
    config.write_text(json.dumps({"seed": 2**64}))
    only_line(runner.invoke(app, [*train, "--config", str(config)]), "seed:", "out of range")
    only_line(
        runner.invoke(app, ["sample", str(run_dir), "-o", str(tmp_path / "s"), "--seed", TOO_BIG]),
        "--seed",
    )
    # every int field of the generated training options
    plugin = load_plugin("pix2pix")
    for cls in (plugin.config_cls, TrainConfig, GANConfig):
        for name, tp in field_types(cls).items():
            if tp in (int, int | None):
                flag = "--" + name.replace("_", "-")
                only_line(runner.invoke(app, [*train, flag, TOO_BIG]), f"{name}:", "out of range")
    assert not (tmp_path / "new").exists()
    # every int option declared by a command (run, sample, export, eval, compress, serve)
    command = typer.main.get_command(app)
    checked = 0
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        for param in sub.params:
            if param.type_descriptor.annotation is not int:
                continue
            flag = next(o for o in param.opts if o.startswith("-"))
            result = runner.invoke(app, [name, flag, TOO_BIG])
            only_line(result, flag.lstrip("-")[:2])
            checked += 1
    assert checked >= 15, checked


def test_row14_option_errors_are_one_line_and_eval_takes_plugin_options(
    trained: tuple[Path, Path],
) -> None:
    """A bad choice, an unknown option, a missing argument: one ``error:`` line each (not a
    boxed panel); ``eval`` parses the plugin's run options as ``run`` does."""
    data, run_dir = trained
    train = ["train", "pix2pix", "--data", str(data)]
    only_line(
        runner.invoke(app, [*train, "--direction", "b2x"]),
        "error: --direction: 'b2x' is not one of 'a2b', 'b2a'",
    )
    only_line(runner.invoke(app, ["sample"]), "missing argument RUN")
    only_line(runner.invoke(app, ["sample", str(run_dir)]), "missing option --out")
    only_line(runner.invoke(app, ["export", str(run_dir), "--opset", "x"]), "--opset:")
    only_line(runner.invoke(app, ["--bogus"]), "unknown option --bogus")
    only_line(runner.invoke(app, ["serve", "--prot", "1"]), "did you mean --port?")
    evaluate = ["eval", "pix2pix", "-c", str(run_dir), "-d", str(data)]
    # pix2pix has no --direction at run time: our unknown-option line, with its options
    only_line(
        runner.invoke(app, [*evaluate, "--direction", "b2a"]),
        "unknown option --direction",
        "--test-time-dropout",
    )
    plain = runner.invoke(app, evaluate)
    dropout = runner.invoke(app, [*evaluate, "--test-time-dropout"])
    assert plain.exit_code == 0 and dropout.exit_code == 0, dropout.output
    means = [line for r in (plain, dropout) for line in r.output.splitlines() if "mean" in line]
    assert len(means) == 2 and means[0] != means[1], means  # the option reached the model
