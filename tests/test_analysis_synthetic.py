"""The analyses on the library's own synthetic sweeps (jaxlaws.sweeps.synthetic), against their truth."""

import numpy as np
import pytest

from jaxlaws.analysis import dynamic, methods, static
from jaxlaws.sweeps import synthetic
from jaxlaws.sweeps.io import concat_sweeps


@pytest.mark.slow
@pytest.mark.parametrize("m", [2, 3])
def test_method_truth_equal_and_flipped(m):
    for mode in ("equal", "flip", "reference"):
        parts = [synthetic.method_sweep("doremi", m, s, truth_mode=mode) for s in range(2)]
        res = methods.method_parameters(concat_sweeps([p[0] for p in parts]), "doremi")
        for s, (_, truth) in enumerate(parts):
            np.testing.assert_allclose(res.matrix("A_star", s), truth["A_star"], atol=0.05)
            # the synthetic truth holds the analysis' A^t; for m=2 diagonalised (the identifiable slopes)
            a_method = res.matrix("A_method", s)
            np.testing.assert_allclose(
                a_method if m == 3 else methods.two_group_effective(a_method), truth["A_method"], rtol=1e-12, atol=1e-15
            )
        if mode == "equal":
            np.testing.assert_allclose(res.similarity["sim"], 1.0, atol=1e-3)
            np.testing.assert_allclose(res.similarity["sim_method_sign"], 1.0, atol=1e-3)
            assert (res.similarity["b"] < 0).all()
        elif mode == "flip":
            # the free scale absorbs a global sign flip; the method's own sign does not
            np.testing.assert_allclose(res.similarity["sim"], 1.0, atol=1e-3)
            np.testing.assert_allclose(res.similarity["sim_method_sign"], -1.0, atol=1e-3)
            assert (res.similarity["b"] > 0).all()


@pytest.mark.slow
def test_reference_static_and_dynamic_m2():
    sweep, truth = synthetic.reference_static_sweep("arxiv_stackexchange", noise=0.003)
    fits = static.fit_static(sweep)
    grid = np.linspace(0.1, 0.9, 9)
    for k, row in fits.params.iterrows():
        th = truth["params"][row["group"]][row["seed"]] if "params" in truth else None
        if th is None:
            pytest.fail(f"synthetic truth lacks 'params': {list(truth)}")
        i = 0 if row["group"] == "arxiv" else 1
        np.testing.assert_allclose(
            fits.predict(k, grid if i == 0 else 1 - grid),
            synthetic.static_law("two_group", th, np.c_[grid, 1 - grid], i),
            atol=0.01,
        )
    dsweep, dtruth = synthetic.reference_dynamic_sweep("arxiv_stackexchange", noise=0.002)
    dfit = dynamic.fit_dynamic(dsweep)
    assert dfit.summary["r2_mean"].iloc[0] > 0.9
    assert len(dfit.params) == 18
