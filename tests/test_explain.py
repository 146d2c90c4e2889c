"""The ``reason`` of ``quasar score --explain``: the weakest family head, or nothing when none is low."""

import json

import pytest

from quasar.runtime.explain import REASON_BELOW, reason


def _meta(heads, combine, explain=()):
    from quasar.contract import fused_metadata
    from quasar.preprocess import PreprocessSpec

    return fused_metadata(encoder="effnet-lite0+taps", pack_hash="sha256:" + "0" * 64, heads=heads,
                          logit_scales=[30.0] * len(heads), preprocess=PreprocessSpec().to_dict(),
                          dynamic_size=False, precision="fp32", combine=combine, explain=explain)


def _info(heads, combine, explain=()):
    from quasar.contract import parse_metadata

    return parse_metadata(_meta(heads, combine, explain))


def test_family_heads_are_what_the_combine_heads_summarise():
    heads = ("sharpness", "noise", "exposure", "quality")
    info = _info(heads, [("mean", (0, 1, 2))])
    assert info.combined_heads == ("sharpness", "noise", "exposure") and info.summary_heads == ("quality",)
    assert _info(heads, []).combined_heads == ()
    assert info.explain_heads == info.combined_heads and info.explained_heads == heads
    assert info.format_version == 2


def test_explanation_heads_are_shown_by_explain_and_the_parts_of_quality_never():
    """The default model's layout: the parts ``quality`` averages, the explanation heads, ``quality``."""
    heads = ("quality.sharpness", "quality.noise", "sharpness", "noise", "quality")
    info = _info(heads, [("mean", (0, 1))], explain=(2, 3))
    assert info.format_version == 3 and info.explain == (2, 3)
    assert info.combined_heads == ("quality.sharpness", "quality.noise")
    assert info.explain_heads == ("sharpness", "noise")
    assert info.summary_heads == ("quality",)
    assert info.explained_heads == ("sharpness", "noise", "quality")


@pytest.mark.parametrize("explain, version, message", [
    ([2, 2], "3", "distinct base columns < 4"),
    ([4], "3", "distinct base columns < 4"),  # the combine head is not a base column
    ([], "3", "non-empty"),
    (["2"], "3", "distinct base columns"),
    ([True], "3", "distinct base columns"),
    ([2], "2", "needs model format version 3, the model says 2"),
])
def test_bad_explain_metadata_is_refused_in_one_line(explain, version, message):
    from quasar.contract import MetadataError, parse_metadata

    meta = _meta(("quality.a", "quality.b", "a", "b", "quality"), [("mean", (0, 1))], explain=(2, 3))
    meta.update({"quasar.explain": json.dumps(explain), "quasar.format_version": version})
    with pytest.raises(MetadataError, match=message) as e:
        parse_metadata(meta)
    assert "\n" not in str(e.value)


def test_reason_names_the_weakest_family_only_when_it_is_low():
    fams = ("sharpness", "noise", "exposure")
    low = {"sharpness": 0.9, "noise": REASON_BELOW - 0.2, "exposure": REASON_BELOW - 0.1, "quality": 0.3}
    assert reason(low, fams) == "noise"
    fine = {"sharpness": 0.9, "noise": REASON_BELOW + 0.01, "exposure": 0.8}
    assert reason(fine, fams) == ""
    assert reason({}, fams) == "" and reason(low, ()) == ""


def test_native_cli_uses_the_same_bound():
    """quasar-score writes the same reason: its bound is this module's REASON_BELOW."""
    import re
    from pathlib import Path

    src = (Path(__file__).resolve().parents[1] / "native" / "cli" / "quasar_score.cpp").read_text()
    m = re.search(r"constexpr float kReasonBelow = ([0-9.]+)f;", src)
    assert m and float(m.group(1)) == REASON_BELOW
