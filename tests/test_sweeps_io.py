"""Sweep directory I/O: lossless CSV and Parquet round trips (incl. hypothesis frames), atomicity, concat."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxlaws.sweeps import Sweep, SweepError, concat_sweeps, read_sweep, write_sweep
from jaxlaws.sweeps.synthetic import method_sweep


def _assert_same(a: Sweep, b: Sweep):
    assert a.groups == b.groups
    pd.testing.assert_frame_equal(a.losses, b.losses)
    pd.testing.assert_frame_equal(a.matrices, b.matrices)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_with_matrices(tmp_path, fmt):
    sweep = method_sweep("aioli", 3, 1)[0]
    write_sweep(sweep, tmp_path / "s", format=fmt)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["groups"] == list(sweep.groups) and meta["format"] == fmt
    _assert_same(read_sweep(tmp_path / "s"), sweep)


_names = st.text(st.characters(codec="utf-8", exclude_characters="\r\x00"), min_size=0, max_size=8)
_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def sweeps(draw):
    groups = tuple(
        draw(
            st.lists(
                st.text(st.characters(codec="utf-8", exclude_characters="\r\x00"), min_size=1, max_size=5),
                min_size=2,
                max_size=4,
                unique=True,
            )
        )
    )
    m = len(groups)
    rows = []
    for r in range(draw(st.integers(1, 4))):
        run = draw(_names) + f"#{r}"
        w = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=m, max_size=m)))
        p = w / w.sum()
        for g in groups:
            rows.append(
                dict(
                    run=run,
                    seed=draw(st.integers(0, 2**40)) * 0 + 7,
                    step=5000,
                    split="val",
                    group=g,
                    loss=draw(_floats),
                    kind="static",
                    parent=draw(_names),
                    break_step=-1,
                    steps_run=-1,
                    method=draw(_names),
                    **{f"p_{h}": p[j] for j, h in enumerate(groups)},
                )
            )
    mats = pd.DataFrame(
        dict(
            run="x",
            seed=0,
            step=1,
            name=draw(_names),
            index=0,
            row=[0, 1],
            col=[1, 0],
            value=draw(st.lists(_floats, min_size=2, max_size=2)),
        )
    )
    return Sweep(pd.DataFrame(rows), groups, mats)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sweep=sweeps(), fmt=st.sampled_from(["csv", "parquet"]))
def test_hypothesis_round_trip_is_exact(tmp_path, sweep, fmt):
    path = tmp_path / f"h_{fmt}"
    write_sweep(sweep, path, format=fmt, overwrite=True)
    _assert_same(read_sweep(path), sweep)


def test_overwrite_and_atomic_failure(tmp_path):
    sweep = method_sweep("doremi", 2, 0)[0]
    path = write_sweep(sweep, tmp_path / "s")
    with pytest.raises(FileExistsError):
        write_sweep(sweep, path)
    write_sweep(sweep, path, format="csv", overwrite=True)
    assert (path / "losses.csv").exists() and not (path / "losses.parquet").exists()
    with pytest.raises(ValueError, match="format"):
        write_sweep(sweep, tmp_path / "t", format="xlsx")
    # a failing write leaves no partial directory behind
    bad = Sweep.__new__(Sweep)
    object.__setattr__(bad, "losses", None)
    object.__setattr__(bad, "matrices", None)
    object.__setattr__(bad, "groups", ("a", "b"))
    with pytest.raises(AttributeError):
        write_sweep(bad, tmp_path / "u")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_read_errors(tmp_path):
    with pytest.raises(SweepError, match="meta.json"):
        read_sweep(tmp_path)
    sweep = method_sweep("doge", 2, 0)[0]
    path = write_sweep(sweep, tmp_path / "s", format="csv")
    df = pd.read_csv(path / "losses.csv", keep_default_na=False)
    df.loc[0, "loss"] = float("nan")
    df.to_csv(path / "losses.csv", index=False)
    with pytest.raises(SweepError, match="modified file .*losses.csv"):  # meta.json's hash catches the edit
        read_sweep(path)
    with pytest.raises(SweepError, match="NaN"):  # and the rows are still validated
        read_sweep(path, verify=False)
    (path / "matrices.csv").unlink()
    with pytest.raises(SweepError, match="missing matrices.csv"):
        read_sweep(path)


def test_concat():
    a, b = method_sweep("aioli", 2, 0)[0], method_sweep("aioli", 2, 1)[0]
    c = concat_sweeps([a, b])
    assert len(c.losses) == len(a.losses) + len(b.losses)
    assert len(c.matrices) == len(a.matrices) + len(b.matrices)
    with pytest.raises(SweepError, match="duplicate"):
        concat_sweeps([a, a])
    with pytest.raises(SweepError, match="groups"):
        concat_sweeps([a, method_sweep("aioli", 3, 0)[0]])


def test_overwrite_has_no_moment_without_the_directory(tmp_path, monkeypatch):
    """Replacing a sweep swaps the directories in one step (Linux renameat2 RENAME_EXCHANGE): after every
    rename the target exists and is a complete sweep, and no hidden leftovers remain."""
    from jaxlaws.sweeps import io

    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    if not io._exchange(tmp_path / "x", tmp_path / "y"):
        pytest.skip("this OS / file system has no atomic directory exchange (the fallback is tested below)")
    (tmp_path / "x").rmdir()
    (tmp_path / "y").rmdir()
    a, b = method_sweep("aioli", 2, 0)[0], method_sweep("aioli", 2, 1)[0]
    path = write_sweep(a, tmp_path / "s")
    seen = []
    real_replace, real_exchange = io.os.replace, io._exchange

    def watch(fn):
        def wrapped(*args):
            out = fn(*args)
            seen.append((path / "meta.json").is_file())
            return out

        return wrapped

    monkeypatch.setattr(io.os, "replace", watch(real_replace))
    monkeypatch.setattr(io, "_exchange", watch(real_exchange))
    write_sweep(b, path, overwrite=True)
    assert seen and all(seen)
    _assert_same(read_sweep(path), b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_overwrite_falls_back_where_the_exchange_is_unsupported(tmp_path, monkeypatch):
    from jaxlaws.sweeps import io

    a, b = method_sweep("aioli", 2, 0)[0], method_sweep("aioli", 2, 1)[0]
    path = write_sweep(a, tmp_path / "s")
    monkeypatch.setattr(io, "_exchange", lambda x, y: False)
    write_sweep(b, path, overwrite=True)
    _assert_same(read_sweep(path), b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
