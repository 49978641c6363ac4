"""Every bad input gives a clear ValueError before anything is compiled."""

import jax
import numpy as np
import pytest
from conftest import dirichlet

import jaxlaws as jl

X3 = dirichlet(3, 9, 0)
Y3 = np.linspace(3.0, 3.5, 9)
KEY = jax.random.key(0)


def fit3(**kw):
    args = dict(law=jl.laws.log_linear(3), x=X3, y=Y3, key=KEY)
    args.update(kw)
    return jl.fit(args.pop("law"), args.pop("x"), args.pop("y"), **args)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(y=Y3[:8]), "match x's 9 points"),
        (dict(x=X3[:3], y=Y3[:3]), "4 free parameters but a fit has only 3"),
        (dict(y=np.r_[Y3[:8], np.nan]), "NaN or inf"),
        (dict(y=np.r_[Y3[:8], np.inf]), "NaN or inf"),
        (dict(x=np.where(np.arange(27).reshape(9, 3) == 4, np.nan, X3)), "x contains NaN"),
        (dict(x=X3 * 1.1), "sum"),
        (dict(x=np.c_[X3[:, :2] + 0.5, X3[:, 2] - 1.0]), r"\[0, 1\]"),
        (dict(x=X3[:, :2]), "expects x with 3 column"),
        (dict(inits=np.zeros((5, 3))), "width 3"),
        (dict(inits=np.full((5, 4), np.nan)), "inits contains NaN"),
        (dict(objective="huber"), "objective must come from"),
        (dict(select="best"), "select must be one of"),
        (dict(key=None), "pass key"),
        (dict(dtype="int32"), "float32 or float64"),
        (dict(validation=np.ones(9, bool)), "fewer|only 0"),
        (dict(test=np.ones(9, bool)), "fewer|only 0"),
        (dict(weights=-np.ones(9)), "non-negative"),
        (dict(weights=np.ones(8)), r"weights must have shape"),
        (dict(bounds={"zz": (0, 1)}), "unknown parameters"),
        (dict(bounds={"t1": (1, 0)}), "lo < hi"),
        (dict(penalty=0.1), "ridge"),
    ],
)
def test_bad_input(kw, msg):
    with pytest.raises(ValueError, match=msg):
        fit3(**kw)


@pytest.mark.parametrize("delta", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_huber_delta(delta):
    with pytest.raises(ValueError, match="positive"):
        jl.huber(delta)


def test_bad_batched_shapes():
    with pytest.raises(ValueError, match="2 problems but y holds 3"):
        jl.fit_batched(jl.laws.log_linear(3), np.stack([X3, X3]), np.stack([Y3, Y3, Y3]), key=KEY)
    with pytest.raises(ValueError, match="per-problem init grid"):
        jl.fit_batched(jl.laws.log_linear(3), np.stack([X3, X3]), np.stack([Y3, Y3]), inits=np.zeros((3, 5, 4)))


def test_bad_two_group_inputs():
    p = np.arange(1, 10) / 10
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        jl.fit(jl.laws.dynamic_two_group(), p * 2, p)
    with pytest.raises(ValueError, match="positive losses"):
        jl.fit_static_two_stage(p, -p)
    with pytest.raises(ValueError, match="same shape"):
        jl.choose_c(p, p[:5])


def test_linear_law_rejects_solver_options_and_log_objective():
    x = dirichlet(3, 9, 0)
    with pytest.raises(ValueError, match="closed form"):
        jl.fit(jl.laws.dynamic_linear(3), x, Y3, inits=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="linear"):
        jl.fit(jl.laws.dynamic_linear(3), x, Y3, objective=jl.huber(0.1, log=True))


def test_log_objective_needs_positive_y():
    x = np.c_[np.full(6, 1e8), np.full(6, 1e10)]
    with pytest.raises(ValueError, match="positive y"):
        jl.fit(jl.laws.chinchilla(), x, -np.ones(6), objective=jl.huber(1e-3, log=True))
    with pytest.raises(ValueError, match="strictly positive"):
        jl.fit(jl.laws.chinchilla(), -x, np.ones(6), objective=jl.huber(1e-3, log=True))


def test_lstsq_bad_input():
    with pytest.raises(ValueError, match="weights"):
        jl.lstsq(np.ones((4, 2)), np.ones(4), weights=-np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        jl.lstsq(np.ones((4, 2)), np.array([1.0, np.nan, 1, 1]))
    with pytest.raises(ValueError, match="at least as many"):
        jl.lstsq(np.ones((4, 3)), np.ones(4), weights=np.array([1.0, 1, 0, 0]))
