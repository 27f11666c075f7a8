"""Options declared once (cptr.options): each command's options are its dataclass's fields, with the same defaults.

Every job command is driven through Typer's own parser (CliRunner) into a capturing function made by the
same ``options_command`` the real command uses; the real commands are also run with bad values.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cptr.bench.cli import BenchOptions
from cptr.demo.probe import ProbeOptions
from cptr.demo.train import DemoTrainOptions
from cptr.export.cli import app as export_app
from cptr.export.style import ExportOptions
from cptr.options import option, option_fields, options_command, positive_ints
from cptr.training.config import TrainConfig
from cptr.training.jobs_options import EncoderJob, MapperJob

REQUIRED = {MapperJob: ["--prompt", "a smiling face"]}


def _parse(cls: type, args: list[str], command: str | None = None):
    """What the command made from ``cls`` builds from ``args``."""
    seen = []
    app = typer.Typer()
    app.command()(options_command(cls, command)(lambda opts: seen.append(opts)))
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return seen[0]


@pytest.mark.parametrize("cls", [ExportOptions, EncoderJob, MapperJob, BenchOptions, DemoTrainOptions, ProbeOptions])
def test_no_flags_gives_the_dataclass_defaults(cls):
    """A command typed with no options builds exactly the library's default object (the two cannot drift)."""
    required = REQUIRED.get(cls, [])
    expected = cls(prompt="a smiling face") if cls is MapperJob else cls()
    assert _parse(cls, required) == expected


def test_every_field_is_an_option_with_its_flag_and_help():
    """Each option field has help, and the command line carries every one of them (and no other)."""
    for cls in (ExportOptions, TrainConfig, EncoderJob, MapperJob, BenchOptions):
        for f, spec in option_fields(cls):
            assert spec.help, f"{cls.__name__}.{f.name} has no help"
    names = {f.name for f, _ in option_fields(TrainConfig, "source")}
    assert "freeze_g" not in names and "size" in names  # per-command options
    assert "freeze_g" in {f.name for f, _ in option_fields(TrainConfig, "finetune")}
    assert "world_size" not in {f.name for f, _ in option_fields(TrainConfig)}  # a plain field is not an option


def test_values_pass_through_their_parse():
    """Typed values reach the object, through each field's parse: --mapper NAME=PATH becomes a dict of paths, a
    bool defaulting to True gets --no-..., min= is enforced by the parser."""
    opts = _parse(ExportOptions, ["--mapper", "smile=a.pt", "--mapper", "angry=b.pt", "--no-verify", "-o", "repo", "--alpha", "0.5"])
    assert opts.mappers == {"smile": Path("a.pt"), "angry": Path("b.pt")}
    assert opts.verify is False and opts.out == Path("repo") and opts.alpha == 0.5
    job = _parse(EncoderJob, ["--steps", "7", "--no-register"])
    assert job.steps == 7 and job.register is False
    app = typer.Typer()
    app.command()(options_command(EncoderJob)(lambda opts: None))
    res = CliRunner().invoke(app, ["--steps", "0"])
    assert res.exit_code == 2 and "--steps" in res.output


def test_a_refused_value_is_a_usage_error_not_a_traceback():
    """A parse that refuses (``--mapper`` without ``=``) exits 2 with the reason, through the real cptr-export."""
    res = CliRunner().invoke(export_app, ["--mapper", "smile"])
    assert res.exit_code == 2 and "NAME=PATH" in res.output and "Traceback" not in res.output


def test_extra_parameters_stay_the_commands_own():
    """Parameters of the decorated function that are not fields (cptr-export --server) reach it beside the object."""

    @dataclasses.dataclass
    class Opts:
        size: int = option(4, help="A size.")

    seen = []
    app = typer.Typer()

    @app.command()
    @options_command(Opts)
    def cmd(opts: Opts, server: str | None = typer.Option(None, "--server")) -> None:
        seen.append((opts, server))

    res = CliRunner().invoke(app, ["--size", "8", "--server", "h:1"])
    assert res.exit_code == 0, res.output
    assert seen == [(Opts(size=8), "h:1")]


def test_positive_ints_names_the_flag_and_an_example() -> None:
    check = positive_ints("--batch", "1,4")
    assert check("1,4,16") == "1,4,16"
    for bad in ("1,0", "1,x", "", "4,-2"):
        with pytest.raises(ValueError, match=r"--batch must be positive integers separated by commas, e\.g\. 1,4"):
            check(bad)


def test_probe_variants_give_cptr_train_finetune_flags_it_parses_and_accepts(tmp_path):
    """Each probe variant's flags, through the finetune command's own options, build the config it names (the
    encoder latents from the work folder's photos, the attribute loss through its perceptual critic), which validates."""
    from cptr.demo.probe import SERVED_VARIANTS, VARIANTS

    enc = tmp_path / "e4e.pt"
    for v in (*VARIANTS, *SERVED_VARIANTS):
        cfg = _parse(TrainConfig, ["--source", "s.pt", "--data", "d", *v.args(tmp_path, enc)], "finetune")
        cfg.validate()
        assert (cfg.freeze_style, cfg.freeze_g, cfg.structure_loss, cfg.structure_weight) == (
            v.freeze_style,
            v.freeze_g,
            v.structure_loss,
            v.structure_weight,
        )
        assert (cfg.encoder_fraction, cfg.attribute_weight) == (v.encoder_fraction, v.attribute_weight)
        if v.encoder_fraction:
            assert (cfg.encoder, cfg.encoder_images) == (str(enc), str(tmp_path / "photo"))
        if v.attribute_weight:
            assert cfg.attribute_critic == str(tmp_path / "perceptual.pt")
    assert any(v.attribute_weight for v in SERVED_VARIANTS) and any(v.encoder_fraction and not v.attribute_weight for v in SERVED_VARIANTS)
