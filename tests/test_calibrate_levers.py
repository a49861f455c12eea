"""Optimisation levers as profile transforms: costs divided by the assumed speed-up (conservative end by
default), overhead and interference kept, the assumption and accuracy cost written into the profile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.cli.main import main as calibrate_main
from calibrate.levers import LEVERS, LeverError, derive, lever_summary
from calibrate.profile import check_profile
from sim.spec.profile import load_profile, read_profile_yaml

ROOT = Path(__file__).resolve().parent.parent
CLOCKWORK = ROOT / "models" / "resnet50-v100-clockwork.yaml"


def base() -> dict:
    data = read_profile_yaml(CLOCKWORK)
    data["overhead_ms"] = 0.5
    return data


def test_every_lever_named_in_the_issue_exists_with_range_accuracy_cost_and_source():
    assert set(LEVERS) == {
        "fp16",
        "int8",
        "int4-weight-only",
        "structured-pruning",
        "distillation",
        "tensorrt",
        "onnxruntime",
    }
    for lever in LEVERS.values():
        low, high = lever.speedup_range
        assert 1 < low <= high
        assert lever.accuracy_cost and lever.source and lever.baseline


@pytest.mark.parametrize(
    "name, default",
    [
        ("int8", 2.0),
        ("int4-weight-only", 3.0),
        ("structured-pruning", 1.5),
        ("distillation", 2.0),
        ("tensorrt", 1.5),
        ("onnxruntime", 1.5),
    ],
)
def test_default_is_the_conservative_end_of_the_published_range(name, default):
    assert LEVERS[name].default_speedup == default


def test_int8_halves_kernel_costs_and_keeps_overhead():
    original = check_profile(base(), "base")
    derived = check_profile(derive(base(), "int8"), "derived")
    for n in (1, 3, 8):
        kernel = original.median_ms(n) - 0.5
        assert derived.median_ms(n) == pytest.approx(0.5 + kernel / 2.0, rel=1e-3)
        assert derived.quantile_ms(n, 0.99) - 0.5 == pytest.approx((original.quantile_ms(n, 0.99) - 0.5) / 2, rel=1e-3)
    assert derived.lever["name"] == "int8" and derived.lever["speedup"] == 2.0
    assert "top-1" in derived.lever["accuracy_cost"]
    assert derived.name == "resnet50-v100-clockwork-int8" and derived.precision == "int8"


def test_speedup_can_be_overridden_and_levers_chain():
    once = derive(base(), "tensorrt", speedup=2.5)
    assert once["lever"]["default_is_conservative_end"] is False
    twice = derive(once, "int8")
    assert twice["lever"]["speedup"] == pytest.approx(5.0)
    assert twice["lever"]["name"] == "tensorrt+int8"
    assert twice["lever"]["applied_on"]["name"] == "tensorrt"
    assert check_profile(twice, "t").median_ms(1) == pytest.approx(0.5 + 3.3 / 5.0, rel=1e-3)


def test_unknown_lever_and_bad_factor():
    with pytest.raises(LeverError, match="unknown lever 'int3'.*int8"):
        derive(base(), "int3")
    with pytest.raises(LeverError, match="positive"):
        derive(base(), "int8", speedup=0)


def test_lever_summary_says_it_is_assumed():
    text = lever_summary(derive(base(), "int8")["lever"])
    assert "x2" in text and "2-4x" in text and "assumed" in text
    assert lever_summary(None).startswith("no optimisation lever")


def test_cli_derive_writes_a_loadable_profile(tmp_path, capsys):
    out = tmp_path / "r-int8.yaml"
    assert calibrate_main(["calibrate", "derive", str(CLOCKWORK), "--lever", "int8", "-o", str(out)]) == 0
    assert "assumed x2" in capsys.readouterr().out
    profile = load_profile(out)
    assert profile.median_ms(1) == pytest.approx(3.3 / 2)
    assert yaml.safe_load(out.read_text())["lever"]["source"]
    assert np.isfinite(profile.sample_ms(8, np.random.default_rng(0)))


def test_cli_levers_lists_the_table(capsys):
    assert calibrate_main(["calibrate", "levers"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in LEVERS)


def test_derived_profile_path_writes_once_and_loads(tmp_path):
    from calibrate.levers import derived_profile_path

    path = derived_profile_path(CLOCKWORK, "distillation", speedup=4, folder=tmp_path)
    assert path.name == "resnet50-v100-clockwork-distillation-x4.yaml"
    assert load_profile(path).median_ms(2) == pytest.approx(5.3 / 4)
    stamp = path.stat().st_mtime_ns
    assert derived_profile_path(CLOCKWORK, "distillation", speedup=4, folder=tmp_path) == path
    assert path.stat().st_mtime_ns == stamp
