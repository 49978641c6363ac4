"""Bundled law results: key conversion, skeleton slots, accessors (numbers from the bundled law_results files)."""

import json

import numpy as np
import pytest

from jaxlaws.sweeps import reference


def test_keys_converted_and_skeletons_dropped():
    d = reference.load_law_results("arxiv_stackexchange/params_static")
    assert set(d["arxiv"]) == {5000}  # steps 1000-4000 are {} skeletons
    assert set(d["arxiv"][5000]) == {0, 1, 2, 3, 4}
    raw = json.loads((reference._root() / "law_results/arxiv_stackexchange/params_static.json").read_text())
    np.testing.assert_array_equal(d["stackexchange"][5000][3], raw["stackexchange"]["5000"]["3"])
    dyn = reference.load_law_results("arxiv_stackexchange/params_dynamic.json")
    assert sorted(dyn["arxiv"][2000]) == pytest.approx([i / 10 for i in range(1, 10)])


def test_static_params_match_spec_means():
    p = reference.static_params("arxiv_stackexchange")
    c = np.array([p["arxiv"][s][0] for s in range(5)])
    assert c.mean() == pytest.approx(2.62, abs=0.01)
    inst = reference.static_params("instruction")
    assert tuple(inst) == reference.INSTRUCTION_TASKS and set(inst["xsum"]) == {0, 1, 2, 3}
    assert inst["squad"][0].shape == (10,)
    m3 = reference.static_params("arxiv_books_stackexchange")
    assert tuple(m3) == ("arxiv", "book", "stackexchange")


def test_dynamic_and_trajectory_accessors():
    d = reference.dynamic_params("arxiv_books_stackexchange")
    assert len(d["book"]) == 9 and 0.290991 in d["book"]
    assert len(reference.dynamic_params("instruction", log_ratio=True)["squad"]) == 10
    opt, mat, b, r = reference.trajectory_params("arxiv_books_stackexchange", "aioli")
    assert (b, r) == (1500, 500) and opt["arxiv"][0].shape == (3,) and mat[0].shape == (1,)
    opt, mat, b, r = reference.trajectory_params("arxiv_stackexchange", "skillit")
    assert b == 1000 and mat[2].shape == (3,)
    with pytest.raises(ValueError, match="log-ratio"):
        reference.dynamic_params("arxiv_stackexchange", log_ratio=True)
    with pytest.raises(ValueError, match="unknown setting"):
        reference.static_params("nope")


def test_skillit_graph_values():
    g = reference.skillit_graph(("arxiv", "stackexchange"), 0)
    np.testing.assert_allclose(g, [[0.758, 0.522], [0.668, 0.719]], atol=5e-4)
    with pytest.raises(ValueError, match="Skill-It graph"):
        reference.skillit_graph(("arxiv", "c4"), 0)
