"""The bundled real example sweeps (``jaxlaws/data/bundle``) agree with their provenance record.

Every part named in ``provenance.json`` loads (sizes and SHA-256 verified by the reader), holds the seeds and
runs its record names, and the dynamic and optimum parts hold the design they claim: every parent x seed
resumed as every listed child mixture for R steps from step B, and the optimum trained at the mixture the
comparison's own DML runs recorded as the static law's optimum (the mean over seeds of ``dml_optimum``,
written by other code at the comparison's commit).
"""

import numpy as np
import pytest

from jaxlaws.sweeps.bundle import (
    BUNDLE_PARTS,
    BUNDLE_SETTINGS,
    bundle_dir,
    bundle_parts,
    bundle_provenance,
    load_bundle,
)

PROV = bundle_provenance()
PARTS = [(s, p) for s in BUNDLE_SETTINGS for p in bundle_parts(s)]


def _runs(losses):
    return losses.drop_duplicates(["run", "seed"])


@pytest.mark.parametrize("setting,part", PARTS)
def test_part_matches_provenance(setting, part):
    rec = PROV["settings"][setting]["parts"][part]
    sweep = load_bundle(setting, (part,))
    assert list(sweep.groups) == PROV["settings"][setting]["groups"]
    assert sorted(int(s) for s in sweep.losses["seed"].unique()) == rec["seeds"]
    if "runs" in rec:
        assert len(_runs(sweep.losses)) == rec["runs"]
    pcols = [f"p_{g}" for g in sweep.groups]
    assert np.allclose(sweep.losses[pcols].sum(axis=1), 1.0, atol=1e-6)
    assert np.isfinite(sweep.losses["loss"]).all() and (sweep.losses["loss"] > 0).all()


def test_bytes_recorded():
    files = [f for f in bundle_dir().rglob("*") if f.is_file() and f.name != "provenance.json"]
    assert PROV["bytes"] == sum(f.stat().st_size for f in files)


@pytest.mark.parametrize("setting", [s for s in BUNDLE_SETTINGS if "dynamic" in bundle_parts(s)])
def test_dynamic_design(setting):
    rec = PROV["settings"][setting]["parts"]["dynamic"]
    L = load_bundle(setting, ("dynamic",)).losses
    groups = PROV["settings"][setting]["groups"]
    pcols = [f"p_{g}" for g in groups]
    parents, kids = _runs(L[L["kind"] == "parent"]), _runs(L[L["kind"] == "child"])
    n_par, n_kid, n_seed = len(rec["parents"]), len(rec["children"]), len(rec["seeds"])
    assert len(parents) == n_par * n_seed and len(kids) == n_par * n_kid * n_seed
    assert np.allclose(
        np.sort(parents[pcols].drop_duplicates().round(5).to_numpy(), 0),
        np.sort(np.round(rec["parents"], 5), 0),
        atol=1e-5,
    )
    assert np.allclose(
        np.sort(kids[pcols].drop_duplicates().round(5).to_numpy(), 0),
        np.sort(np.round(rec["children"], 5), 0),
        atol=1e-5,
    )
    assert (kids["break_step"] == rec["break_step"]).all() and (kids["steps_run"] == rec["remaining_steps"]).all()
    assert set(kids["parent"]) == set(parents["run"])
    # every child's last evaluation is R steps after the break; every parent was evaluated at the break
    last = L[L["kind"] == "child"].groupby(["run", "seed"])["step"].max()
    assert (last == rec["break_step"] + rec["remaining_steps"]).all()
    assert (L[(L["kind"] == "parent")].groupby(["run", "seed"])["step"].max() == rec["break_step"]).all()


@pytest.mark.parametrize("setting", [s for s in BUNDLE_SETTINGS if "optimum" in bundle_parts(s)])
def test_optimum_is_the_comparisons_predicted_mixture(setting):
    parts = PROV["settings"][setting]["parts"]
    L = load_bundle(setting, ("optimum",)).losses
    pcols = [f"p_{g}" for g in PROV["settings"][setting]["groups"]]
    mix = L[pcols].drop_duplicates().to_numpy()
    assert len(mix) == 1 and (L["kind"] == "static").all()
    dml = np.mean(list(parts["compare"]["dml_optimum"].values()), axis=0)
    assert np.abs(mix[0] - dml).max() < 1e-6
    assert np.abs(mix[0] - parts["optimum"]["mixture"]).max() < 1e-6
    assert L.groupby(["run", "seed"])["step"].max().eq(PROV["training"]["steps"]).all()


def test_bad_requests_are_named():
    with pytest.raises(ValueError, match="bundle setting"):
        load_bundle("m4")
    with pytest.raises(ValueError, match="bundle parts"):
        load_bundle("m2", ("nope",))
    missing = [p for p in BUNDLE_PARTS if p not in bundle_parts("m3")]
    if missing:
        with pytest.raises(ValueError, match="has no"):
            load_bundle("m3", (missing[0],))


@pytest.mark.parametrize("setting", BUNDLE_SETTINGS)
def test_description_names_every_part(setting):
    from jaxlaws.sweeps.bundle import describe_bundle

    text = describe_bundle(setting)
    assert "REAL runs" in text and "None" not in text
    for part in bundle_parts(setting):
        assert f"  {part}: " in text
