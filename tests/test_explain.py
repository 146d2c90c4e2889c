"""The ``reason`` of ``quasar score --explain``: the weakest family head, or nothing when none is low."""

from quasar.runtime.explain import REASON_BELOW, reason


def _info(heads, combine):
    from quasar.contract import fused_metadata, parse_metadata
    from quasar.preprocess import PreprocessSpec

    meta = fused_metadata(encoder="effnet-lite0+taps", pack_hash="sha256:" + "0" * 64, heads=heads,
                          logit_scales=[30.0] * len(heads), preprocess=PreprocessSpec().to_dict(),
                          dynamic_size=False, precision="fp32", combine=combine)
    return parse_metadata(meta)


def test_family_heads_are_what_the_combine_heads_summarise():
    heads = ("sharpness", "noise", "exposure", "quality")
    info = _info(heads, [("mean", (0, 1, 2))])
    assert info.combined_heads == ("sharpness", "noise", "exposure") and info.summary_heads == ("quality",)
    assert _info(heads, []).combined_heads == ()


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
