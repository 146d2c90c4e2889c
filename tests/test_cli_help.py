"""`--help` of every command: help text for every option, defaults shown, what a score means;
`python -m quasar.photos --help` prints help without installing anything."""

from __future__ import annotations

import argparse

import pytest

from quasar.cli import build_parser, main


def test_photos_help_prints_help_and_downloads_nothing(tmp_path, monkeypatch, capsys):
    from quasar import photos

    monkeypatch.setattr(photos, "_apt_download", lambda *a, **k: pytest.fail("downloaded on --help"))
    monkeypatch.setenv("QUASAR_CACHE", str(tmp_path))
    with pytest.raises(SystemExit) as e:
        photos.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m quasar.photos") and "--sources" in out and "--split" in out
    assert not any(tmp_path.iterdir())



# --------------------------------------------------------------------------- --help


def _parsers(parser: argparse.ArgumentParser, name: str = "quasar"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_of_every_command_has_help_and_shows_its_default():
    from quasar.helpfmt import HelpFormatter

    seen = 0
    for name, parser in _parsers(build_parser()):
        assert parser.formatter_class is HelpFormatter, name
        fmt = HelpFormatter(name)
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            seen += 1
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{label} has no help text"
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert "default" in fmt._get_help_string(action).lower(), f"{label} does not show its default"
        parser.format_help()  # every help renders
    assert seen > 60


def test_score_help_says_what_a_score_means(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    out = capsys.readouterr().out
    meaning = out[out.index("What a score means:"):out.index("exit status:")]
    for text in ("0..1", "higher is better", "lower_better is False", "`quality`", "sharpness, noise, compression, "
                 "exposure, color, spatial, optics", "--explain", "`reason`"):
        assert text in " ".join(meaning.split()), text
    assert "--batch-size BATCH_SIZE" in out and "(default: 4 on CPU, 32 on CUDA" in " ".join(out.split())
    assert "(default: auto)" in out


def test_one_hxw_parser_for_every_option():
    """--static, --opt-size and --synthetic share helpfmt.parse_hw: one-line QuasarErrors naming the flag."""
    from quasar.errors import QuasarError
    from quasar.helpfmt import parse_hw

    assert parse_hw("384x512", "--static") == (384, 512) and parse_hw("3000X4000", "--synthetic") == (3000, 4000)
    with pytest.raises(QuasarError, match=r"^--static must look like 384x512 \(height x width\), not '384'$"):
        parse_hw("384", "--static")
    with pytest.raises(QuasarError, match=r"^--opt-size 0x5: each side must be at least 1 pixels$"):
        parse_hw("0x5", "--opt-size")
    with pytest.raises(QuasarError, match=r"^--synthetic 8x8: each side must be 16\.\.20000 pixels$"):
        parse_hw("8x8", "--synthetic", minimum=16, maximum=20000)
