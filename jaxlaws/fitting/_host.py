r"""A fit's first run without compiling: the multi-start Levenberg-Marquardt on the host, in NumPy.

A one-off fit in a fresh process spends most of its time compiling its program (the XLA compile of a
``while_loop`` LM takes a second or more on a CPU), while SciPy's multi-start fitter, which compiles nothing,
finishes small problems in tens of milliseconds. This module runs the *same* algorithm as the compiled
:class:`~jaxlaws.fitting.solvers.LevenbergMarquardt` (the same trips, damping rule, active set, stopping test
and positive-definite solve, in float64) with NumPy, batched over the inits, so the first fit of a
configuration in a process compiles nothing; the engine compiles on its next call, whose warm runs are faster.

The law is not re-written: ``jax.make_jaxpr`` traces its ``predict`` for one parameter vector (no compile), and
:func:`compile_forward` turns that jaxpr into one straight-line Python function of NumPy calls over a leading
axis of inits, the data folded in, that also carries each value's forward-mode tangents along the parameters
(JAX's JVP rules, written as NumPy): one pass gives the predictions and the Jacobian the compiled solver forms.
A primitive without a rule here makes :func:`run` return ``None``, and the engine compiles instead.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxlaws.fitting import validate
from jaxlaws.fitting.execute import bucket
from jaxlaws.fitting.solvers import GN_DAMPING, LevenbergMarquardt

__all__: list[str] = []

#: Jacobian entries (problems x inits x points x parameters) above which a fit compiles at once (NumPy's
#: op-by-op passes would then cost more than the compile), and the most problems a host run takes.
MAX_ELEMENTS = 1 << 18
MAX_PROBLEMS = 8


class Unsupported(Exception):
    """A primitive or parameter the host interpreter does not evaluate."""


# ------------------------------------------------------------------------------------------- interpreter
# The jaxpr is traced for ONE parameter vector; the interpreter runs it for a batch of them at once, as ``vmap``
# would: a value that depends on the parameters carries a leading batch axis (flag ``True``), the others (the
# data, constants) do not. Elementwise primitives need nothing more (jaxpr operands have equal shapes, and
# NumPy aligns ``(K, *s)`` with ``s`` from the right); shape primitives shift their axes by one.


def _div(a, b):
    if np.issubdtype(np.result_type(a, b), np.integer):
        return np.trunc(np.true_divide(a, b)).astype(np.result_type(a, b))
    return np.true_divide(a, b)


def _convert(a, new_dtype):
    dt = np.dtype(new_dtype)  # floats stay float64: the host run is float64 throughout
    return np.asarray(a, np.float64 if np.issubdtype(dt, np.floating) else dt)


def _select_n(which, *cases):
    which = np.asarray(which)
    if which.dtype == np.bool_:
        return np.where(which, cases[1], cases[0])
    return np.choose(which.astype(np.int64), cases)


def _clamp(lo, a, hi):
    return np.minimum(np.maximum(a, lo), hi)


ELEMENTWISE: dict[str, Callable[..., Any]] = {
    "add": np.add,
    "add_any": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": _div,
    "neg": np.negative,
    "exp": np.exp,
    "exp2": np.exp2,
    "log": np.log,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "sqrt": np.sqrt,
    "rsqrt": lambda a: 1.0 / np.sqrt(a),
    "tanh": np.tanh,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "arctan": np.arctan,
    "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "pow": np.power,
    "integer_pow": lambda a, y: a**y,
    "square": lambda a: a * a,
    "abs": np.abs,
    "sign": np.sign,
    "max": np.maximum,
    "min": np.minimum,
    "floor": np.floor,
    "ceil": np.ceil,
    "is_finite": np.isfinite,
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "and": np.logical_and,
    "or": np.logical_or,
    "not": np.logical_not,
    "select_n": _select_n,
    "clamp": _clamp,
    "convert_element_type": _convert,
    "copy": lambda a: a,
    "copy_p": lambda a: a,
    "stop_gradient": lambda a: a,
}


def _broadcast_in_dim(vals, flags, shape, broadcast_dimensions, **_):
    (a,), (batched,) = vals, flags
    a = np.asarray(a)
    lead = a.shape[:1] if batched else ()
    expanded = list(lead) + [1] * len(shape)
    for src, dst in enumerate(broadcast_dimensions):
        expanded[len(lead) + dst] = a.shape[len(lead) + src]
    return np.broadcast_to(a.reshape(expanded), tuple(lead) + tuple(shape))


def _reshape(vals, flags, new_sizes, dimensions=None, **_):
    if dimensions is not None:
        raise Unsupported("reshape with dimensions")
    (a,), (batched,) = vals, flags
    return np.reshape(a, (a.shape[:1] if batched else ()) + tuple(new_sizes))


def _slice(vals, flags, start_indices, limit_indices, strides=None, **_):
    (a,), (batched,) = vals, flags
    strides = strides or (1,) * len(start_indices)
    idx = tuple(slice(s, e, k) for s, e, k in zip(start_indices, limit_indices, strides))
    return a[(slice(None),) + idx if batched else idx]


def _axes(flags, axes):
    return tuple(int(d) + bool(flags[0]) for d in axes)


def _dot_general(vals, flags, dimension_numbers, **_):
    (ca, cb), (ba, bb) = dimension_numbers
    (a, b), (fa, fb) = [np.asarray(v) for v in vals], flags
    letters = iter("abcdefghijklmnopqrstuvwxy")
    la = [next(letters) for _ in range(a.ndim - fa)]
    lb: list = [None] * (b.ndim - fb)
    for i, j in zip(list(ba) + list(ca), list(bb) + list(cb)):
        lb[j] = la[i]
    lb = [c if c is not None else next(letters) for c in lb]
    out = [la[i] for i in ba] + [la[i] for i in range(len(la)) if i not in ba and i not in ca]
    out += [lb[j] for j in range(len(lb)) if j not in bb and j not in cb]
    z = "z" if fa or fb else ""
    spec = f"{'z' * fa}{''.join(la)},{'z' * fb}{''.join(lb)}->{z}{''.join(out)}"
    return np.einsum(spec, a, b)


def _reduce(fn):
    return lambda vals, flags, axes, **_: fn(vals[0], axis=_axes(flags, axes))


def _concatenate(vals, flags, dimension, **_):
    if not any(flags):
        return np.concatenate(vals, axis=dimension)
    k = next(v.shape[0] for v, f in zip(vals, flags) if f)
    vals = [v if f else np.broadcast_to(v, (k,) + np.shape(v)) for v, f in zip(vals, flags)]
    return np.concatenate(vals, axis=dimension + 1)


def _stack(vals, flags, axis, **_):
    if any(flags):
        k = next(v.shape[0] for v, f in zip(vals, flags) if f)
        vals = [v if f else np.broadcast_to(v, (k,) + np.shape(v)) for v, f in zip(vals, flags)]
    return np.stack(vals, axis=axis + bool(any(flags)))


def _iota(vals, flags, dtype, shape, dimension, **_):
    ar = np.arange(shape[dimension], dtype=dtype)
    return np.broadcast_to(ar.reshape([-1 if d == dimension else 1 for d in range(len(shape))]), shape)


def _cumulative(fn):
    def f(vals, flags, axis, reverse=False, **_):
        a, ax = vals[0], axis + bool(flags[0])
        return np.flip(fn(np.flip(a, ax), axis=ax), ax) if reverse else fn(a, axis=ax)

    return f


SHAPED: dict[str, Callable[..., Any]] = {
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": _reshape,
    "squeeze": lambda vals, flags, dimensions: np.squeeze(vals[0], axis=_axes(flags, dimensions)),
    "expand_dims": lambda vals, flags, dimensions: np.expand_dims(vals[0], _axes(flags, dimensions)),
    "transpose": lambda vals, flags, permutation: np.transpose(
        vals[0], ((0,) if flags[0] else ()) + _axes(flags, permutation)
    ),
    "slice": _slice,
    "concatenate": _concatenate,
    "stack": _stack,
    "dot_general": _dot_general,
    "reduce_sum": _reduce(np.sum),
    "reduce_prod": _reduce(np.prod),
    "reduce_max": _reduce(np.max),
    "reduce_min": _reduce(np.min),
    "cumsum": _cumulative(np.cumsum),
    "cumprod": _cumulative(np.cumprod),
    "iota": _iota,
}

#: primitives that call a sub-jaxpr, and the parameter that holds it
CALLS = {
    "pjit": "jaxpr",
    "jit": "jaxpr",
    "closed_call": "call_jaxpr",
    "core_call": "call_jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "remat": "jaxpr",
    "checkpoint": "jaxpr",
}
_ELEMENTWISE_PARAMS = {"integer_pow": ("y",), "convert_element_type": ("new_dtype",)}  # the others: dtype hints
_IGNORED = ("accuracy", "sharding", "out_sharding")


def _closed(j: Any) -> tuple:
    return (j.jaxpr, j.consts) if hasattr(j, "consts") else (j, ())


def _callee(name: str, params: dict) -> tuple:
    """The ``(jaxpr, consts)`` a call primitive runs (inlined by the writers)."""
    sub = params.get(CALLS[name]) or params.get("fun_jaxpr")
    if sub is None:
        raise Unsupported(name)
    return _closed(sub)


_OPERATORS = {"add": "+", "add_any": "+", "sub": "-", "mul": "*"}


class _Writer:
    """Writes the primal part of a jaxpr as the source of one straight-line Python function of NumPy calls: the
    per-equation work of an interpreter (look-ups, parameters, batch flags) is done once here, and every
    equation whose inputs are all known (the data, constants) is evaluated here, once, not on every pass.
    :class:`_ForwardWriter` walks the jaxpr (sub-jaxprs inlined) and adds the tangents."""

    def __init__(self):
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {"np": np}
        self.n = 0

    def fresh(self) -> str:
        self.n += 1
        return f"v{self.n}"

    def bind(self, obj: Any) -> str:
        name = f"k{len(self.ns)}"
        self.ns[name] = obj
        return name

    def line(self, expr: str) -> str:
        out = self.fresh()
        self.lines.append(f"{out} = {expr}")
        return out

    # a value: ("c", array) known now, or ("v", name, batched, lazy) computed by the generated code; lazy: made by
    # broadcast_in_dim as a reshape with size-1 axes (which elementwise NumPy broadcasts by itself), expanded
    # only where a shape primitive needs the full shape
    def name_of(self, val: tuple, aval: Any, full: bool) -> tuple[str, bool]:
        if val[0] == "c":
            return self.bind(val[1]), False
        _, name, batched, lazy = val
        if lazy and full:
            lead = f"{name}.shape[:1] + " if batched else ""
            name = self.line(f"np.broadcast_to({name}, {lead}{tuple(aval.shape)!r})")
        return name, batched

    def elementwise(self, name: str, params: dict, eqn: Any, vals: list) -> tuple:
        kw = {k: params[k] for k in _ELEMENTWISE_PARAMS.get(name, ()) if k in params}
        rule = ELEMENTWISE[name] if not kw else functools.partial(ELEMENTWISE[name], **kw)
        if all(v[0] == "c" for v in vals):  # known now: folded
            with np.errstate(all="ignore"):
                return ("c", np.asarray(rule(*(v[1] for v in vals))))
        rank = max(len(v.aval.shape) for v in eqn.invars)
        args, batched = [], False
        for v, val in zip(eqn.invars, vals):
            a, f = self.name_of(val, v.aval, False)
            lower = rank - len(v.aval.shape)
            args.append(f"{a}[:{', None' * lower}]" if f and lower else a)
            batched |= f
        lazy = any(val[0] == "v" and val[3] for val in vals)
        floating = np.issubdtype(np.dtype(eqn.outvars[0].aval.dtype), np.floating)
        if name in _OPERATORS and floating:
            expr = f" {_OPERATORS[name]} ".join(args)
        elif name == "neg":
            expr = f"-{args[0]}"
        elif name == "div" and floating:
            expr = f"{args[0]} / {args[1]}"
        elif name == "integer_pow" and kw["y"] == 2:
            expr = f"{args[0]} * {args[0]}"
        elif name == "convert_element_type" and floating:
            expr = args[0]
        else:
            expr = f"{self.bind(rule)}({', '.join(args)})"
        return ("v", self.line(expr), batched, lazy)

    def shaped(self, name: str, params: dict, eqn: Any, vals: list) -> tuple:
        flags = [v[0] == "v" and v[2] for v in vals]
        if all(v[0] == "c" for v in vals):  # known now (or no input, as iota): folded
            return ("c", np.asarray(SHAPED[name]([v[1] for v in vals], flags, **params)))
        lazy = name == "broadcast_in_dim"
        names = [self.name_of(v, var.aval, not lazy)[0] for v, var in zip(vals, eqn.invars)]
        batched = any(flags)
        out_shape = tuple(eqn.outvars[0].aval.shape)
        lead = "(-1,) + " if batched else ""
        if name == "squeeze" or (name == "reshape" and params.get("dimensions") is None):
            expr = f"{names[0]}.reshape({lead}{out_shape!r})"
        elif name == "slice" and not params.get("strides"):
            idx = ", ".join(f"{s}:{e}" for s, e in zip(params["start_indices"], params["limit_indices"]))
            expr = f"{names[0]}[{':, ' if batched else ''}{idx}]"
        elif lazy:
            shape = [1] * len(out_shape)
            for src, dst in enumerate(params["broadcast_dimensions"]):
                shape[dst] = eqn.invars[0].aval.shape[src]
            expr = f"{names[0]}.reshape({lead}{tuple(shape)!r})"
        else:
            try:
                rule = functools.partial(SHAPED[name], flags=flags, **params)
            except TypeError as e:
                raise Unsupported(f"{name}: {e}") from None
            expr = f"{self.bind(rule)}([{', '.join(names)}])"
        return ("v", self.line(expr), batched, lazy)


# ------------------------------------------------------------------------------------------- forward mode
# Tangents of the law's values along each parameter, written next to the primal code: a tangent is an array
# (K or 1, P, *shape) -- inits (1: the same for all), parameters, then the value's own shape -- or None (zero:
# the value does not depend on the parameters). Rules as JAX's JVP rules (max/min split ties evenly).
_UNARY_T = {
    "neg": "-{t}",
    "exp": "{o} * {t}",
    "exp2": "{o} * {t} * 0.6931471805599453",
    "log": "{t} / {a}",
    "log1p": "{t} / (1.0 + {a})",
    "expm1": "({o} + 1.0) * {t}",
    "sqrt": "{t} * 0.5 / {o}",
    "rsqrt": "{t} * (-0.5) * {o} / {a}",
    "tanh": "{t} * (1.0 - {o} * {o})",
    "logistic": "{t} * {o} * (1.0 - {o})",
    "sin": "{t} * np.cos({a})",
    "cos": "-{t} * np.sin({a})",
    "tan": "{t} * (1.0 + {o} * {o})",
    "sinh": "{t} * np.cosh({a})",
    "cosh": "{t} * np.sinh({a})",
    "arctan": "{t} / (1.0 + {a} * {a})",
    "square": "2.0 * {a} * {t}",
    "abs": "np.sign({a}) * {t}",
    "copy": "{t}",
    "copy_p": "{t}",
}
_ZERO_T = {
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
    "is_finite",
    "floor",
    "ceil",
    "sign",
    "round",
    "stop_gradient",
    "iota",
}


def _tjoin(ts: list, shapes: list, axis: int, stack: bool) -> np.ndarray:
    """Concatenated (or stacked) tangents, zeros for the operands without one."""
    live = [t for t in ts if t is not None]
    lead, P = max(t.shape[0] for t in live), live[0].shape[1]
    full = [
        np.zeros((lead, P) + tuple(sh)) if t is None else np.broadcast_to(t, (lead, P) + tuple(sh))
        for t, sh in zip(ts, shapes)
    ]
    return np.stack(full, axis=axis + 2) if stack else np.concatenate(full, axis=axis + 2)


def _tpick(t: np.ndarray, a: np.ndarray, o: np.ndarray, axes: tuple, batched: bool) -> np.ndarray:
    """The tangent of ``reduce_max``/``reduce_min``: the mean of the tangents where the value is the extreme."""
    off = 1 if batched else 0
    o = np.expand_dims(o, tuple(x + off for x in axes))
    mask = (a[:, None] == o[:, None]) if batched else (a == o)
    ax = tuple(x + 2 for x in axes)
    picked = t * mask
    return picked.sum(axis=ax) / (mask + np.zeros_like(picked)).sum(axis=ax)


class _ForwardWriter(_Writer):
    """:class:`_Writer` that also writes each value's tangents along the parameters (forward mode), so that one
    pass gives the prediction and its Jacobian from the law's own jaxpr -- no ``jax.jvp`` trace needed."""

    def __init__(self):
        super().__init__()
        self.ns.update(_tjoin=_tjoin, _tpick=_tpick)

    def aligned(self, val: tuple, var: Any, rank: int) -> str:
        """A primal value as it lines up with tangents of an elementwise result of rank ``rank``."""
        name, batched = self.name_of(val, var.aval if var is not None else None, False)
        if not batched:
            return name
        lower = rank - (len(var.aval.shape) if var is not None else rank)
        return f"{name}[:, None{', None' * lower}]"

    @staticmethod
    def t_aligned(t: str | None, var: Any, rank: int) -> str | None:
        lower = rank - len(var.aval.shape)
        return t if t is None or not lower else f"{t}[:, :{', None' * lower}]"

    def emit_jvp(self, jaxpr: Any, consts: Any, ins: list[tuple], tins: list) -> tuple[list, list]:
        env: dict = {}
        tan: dict = {}

        def read(v):
            return ("c", np.asarray(v.val)) if type(v).__name__ == "Literal" else env[v]

        def tread(v):
            return None if type(v).__name__ == "Literal" else tan.get(v)

        for v, c in zip(jaxpr.constvars, consts):
            env[v] = ("c", np.asarray(c))
        for v, val, t in zip(jaxpr.invars, ins, tins):
            env[v], tan[v] = val, t
        for eqn in jaxpr.eqns:
            name = eqn.primitive.name
            vals = [read(v) for v in eqn.invars]
            ts = [tread(v) for v in eqn.invars]
            params = {k: v for k, v in eqn.params.items() if k not in _IGNORED}
            if name in CALLS:
                outs, touts = self.emit_jvp(*_callee(name, params), vals, ts)
            else:
                if name in ELEMENTWISE:
                    outs = [self.elementwise(name, params, eqn, vals)]
                elif name in SHAPED:
                    outs = [self.shaped(name, params, eqn, vals)]
                else:
                    raise Unsupported(name)
                touts = [None if all(t is None for t in ts) else self.tangent(name, params, eqn, vals, ts, outs[0])]
            for v, o, t in zip(eqn.outvars, outs, touts):
                env[v], tan[v] = o, t
        return [read(v) for v in jaxpr.outvars], [tread(v) for v in jaxpr.outvars]

    def tangent(self, name: str, params: dict, eqn: Any, vals: list, ts: list, out: tuple) -> str | None:
        if name in _ZERO_T:
            return None
        out_var = eqn.outvars[0]
        if name in ELEMENTWISE:
            if not np.issubdtype(np.dtype(out_var.aval.dtype), np.floating):
                return None
            R = len(out_var.aval.shape)
            A = [self.aligned(v, var, R) for v, var in zip(vals, eqn.invars)]
            T = [self.t_aligned(t, var, R) for t, var in zip(ts, eqn.invars)]
            res = self.aligned(out, out_var, R)
            return self.line(self.elementwise_tangent(name, params, A, T, res))
        return self.shaped_tangent(name, params, eqn, vals, ts, out)

    @staticmethod
    def elementwise_tangent(name: str, params: dict, A: list, T: list, res: str) -> str:
        if name in _UNARY_T or name == "convert_element_type":
            return _UNARY_T.get(name, "{t}").format(t=T[0], a=A[0], o=res)
        if name == "integer_pow":
            y = params["y"]
            return f"{y} * {A[0]} ** {y - 1} * {T[0]}" if y != 1 else T[0]
        if name in ("add", "add_any", "sub"):
            sign = "-" if name == "sub" else "+"
            if T[1] is None:
                return T[0]
            return f"{T[0]} {sign} {T[1]}" if T[0] is not None else f"{sign}{T[1]}"
        if name in ("mul", "div", "pow", "max", "min"):
            a, b, ta, tb = A[0], A[1], T[0], T[1]
            if name == "mul":
                parts = [f"{ta} * {b}" if ta else None, f"{a} * {tb}" if tb else None]
            elif name == "div":
                parts = [f"{ta} / {b}" if ta else None, f"-({res} * {tb} / {b})" if tb else None]
            elif name == "pow":
                parts = [
                    f"{ta} * {b} * np.power({a}, {b} - 1.0)" if ta else None,
                    f"{tb} * np.where({a} == 0, 0.0, {res} * np.log(np.where({a} == 0, 1.0, {a})))" if tb else None,
                ]
            else:
                cmp = ">" if name == "max" else "<"
                m = f"(({a} {cmp} {b}) + 0.5 * ({a} == {b}))"
                parts = [f"{ta} * {m}" if ta else None, f"{tb} * (1.0 - {m})" if tb else None]
            return " + ".join(p for p in parts if p)
        if name == "select_n":
            if len(T) != 3:
                raise Unsupported("select_n over more than two cases")
            return f"np.where({A[0]}, {T[2] or 0.0}, {T[1] or 0.0})"
        if name == "clamp":
            if T[0] is not None or T[2] is not None:
                raise Unsupported("clamp with parameter-dependent bounds")
            return f"np.where(({A[1]} >= {A[0]}) & ({A[1]} <= {A[2]}), {T[1]}, 0.0)"
        raise Unsupported(f"tangent of {name}")

    def shaped_tangent(self, name: str, params: dict, eqn: Any, vals: list, ts: list, out: tuple) -> str:
        t, var = ts[0], eqn.invars[0] if eqn.invars else None
        out_shape = tuple(eqn.outvars[0].aval.shape)
        if name in ("reshape", "squeeze", "expand_dims"):
            if params.get("dimensions") is not None and name == "reshape":
                raise Unsupported("reshape with dimensions")
            return self.line(f"{t}.reshape({t}.shape[:2] + {out_shape!r})")
        if name == "broadcast_in_dim":
            shape = [1] * len(out_shape)
            for src, dst in enumerate(params["broadcast_dimensions"]):
                shape[dst] = var.aval.shape[src]
            return self.line(
                f"np.broadcast_to({t}.reshape({t}.shape[:2] + {tuple(shape)!r}), {t}.shape[:2] + {out_shape!r})"
            )
        if name == "transpose":
            return self.line(f"{t}.transpose({(0, 1) + tuple(p + 2 for p in params['permutation'])!r})")
        if name == "slice":
            if params.get("strides"):
                raise Unsupported("strided slice")
            idx = ", ".join(f"{s}:{e}" for s, e in zip(params["start_indices"], params["limit_indices"]))
            return self.line(f"{t}[:, :, {idx}]")
        if name in ("concatenate", "stack"):
            shapes = [tuple(v.aval.shape) for v in eqn.invars]
            axis = params["dimension"] if name == "concatenate" else params["axis"]
            tl = "[" + ", ".join(x or "None" for x in ts) + "]"
            return self.line(f"_tjoin({tl}, {shapes!r}, {axis}, {name == 'stack'})")
        if name == "reduce_sum":
            return self.line(f"{t}.sum(axis={tuple(a + 2 for a in params['axes'])!r})")
        if name in ("reduce_max", "reduce_min"):
            a, batched = self.name_of(vals[0], var.aval, True)
            o, _ = self.name_of(out, eqn.outvars[0].aval, True)
            return self.line(f"_tpick({t}, {a}, {o}, {tuple(params['axes'])!r}, {batched})")
        if name == "cumsum":
            ax = params["axis"] + 2
            if params.get("reverse"):
                return self.line(f"np.flip(np.cumsum(np.flip({t}, {ax}), axis={ax}), {ax})")
            return self.line(f"np.cumsum({t}, axis={ax})")
        if name == "dot_general":
            return self.line(self.dot_tangent(params, eqn, vals, ts))
        raise Unsupported(f"tangent of {name}")

    def dot_tangent(self, params: dict, eqn: Any, vals: list, ts: list) -> str:
        (ca, cb), (ba, bb) = params["dimension_numbers"]
        ra, rb = (len(v.aval.shape) for v in eqn.invars)
        letters = iter("abcdefghijklmnopqrstuvwxy")
        la = [next(letters) for _ in range(ra)]
        lb: list = [None] * rb
        for i, j in zip(list(ba) + list(ca), list(bb) + list(cb)):
            lb[j] = la[i]
        lb = [c if c is not None else next(letters) for c in lb]
        out = [la[i] for i in ba] + [la[i] for i in range(ra) if i not in ba and i not in ca]
        out += [lb[j] for j in range(rb) if j not in bb and j not in cb]
        sa, sb, so = "".join(la), "".join(lb), "".join(out)
        (na, fa), (nb, fb) = (self.name_of(v, var.aval, True) for v, var in zip(vals, eqn.invars))
        terms = []
        if ts[0] is not None:
            terms.append(f"np.einsum('...Z{sa},{'...' if fb else ''}{sb}->...Z{so}', {ts[0]}, {nb})")
        if ts[1] is not None:
            terms.append(f"np.einsum('{'...' if fa else ''}{sa},...Z{sb}->...Z{so}', {na}, {ts[1]})")
        return " + ".join(terms)


def compile_forward(closed: Any, x: np.ndarray, P: int) -> Callable:
    """``theta (K, P) -> (pred (K, ...), d pred / d theta (K or 1, P, ...))`` from the jaxpr of the law's
    ``predict(theta (P,), x)`` alone, the data ``x`` folded in. Raises :class:`Unsupported` on a primitive
    without a rule here."""
    w = _ForwardWriter()
    eye = w.bind(np.eye(P)[None])  # d theta / d theta: the identity, the same for every init
    (out,), (tout,) = w.emit_jvp(
        closed.jaxpr, closed.consts, [("v", "a0", True, False), ("c", np.asarray(x))], [eye, None]
    )
    pred, _ = w.name_of(out, closed.jaxpr.outvars[0].aval, True)
    if tout is None:
        tout = w.line(f"np.zeros((1, {P}) + {tuple(closed.jaxpr.outvars[0].aval.shape)!r})")
    body = "\n    ".join(w.lines) or "pass"
    src = f"def f(a0):\n    {body}\n    return {pred}, {tout}\n"
    exec(compile(src, "<jaxlaws host law>", "exec"), w.ns)  # noqa: S102 -- source made above from a jaxpr
    return w.ns["f"]


# ------------------------------------------------------------------------------------------- the law
class Evaluator:
    """``theta (S, P) -> (pred (S, ...), r (S, N), J (S, N, P))`` for one problem's points: one NumPy pass of the
    law's jaxpr with forward-mode tangents (:func:`compile_forward`). Raises :class:`Unsupported` for a law with
    a primitive that has no rule here."""

    def __init__(self, closed: Any, objective: Any, x: np.ndarray, y: np.ndarray):
        x = np.asarray(x, np.float64)
        self.fn = compile_forward(closed, x, closed.jaxpr.invars[0].aval.shape[0])
        self.objective, self.y = objective, np.asarray(y, np.float64)
        self.log_y = np.log(self.y) if objective.log else None

    def __call__(self, theta: np.ndarray):
        with np.errstate(all="ignore"):
            return self.raw(theta)

    def raw(self, theta: np.ndarray):
        """:meth:`__call__` without its ``np.errstate`` (the solver's loop runs inside its own)."""
        S = theta.shape[0]
        pred, tangents = self.fn(theta)
        if pred.ndim == self.y.ndim:  # a law that ignores its parameters
            pred = np.broadcast_to(pred, (S,) + pred.shape)
        if tangents.shape[0] != S or tangents.ndim == self.y.ndim + 1:
            tangents = np.broadcast_to(tangents, (S,) + tangents.shape[-self.y.ndim - 1 :])
        if self.objective.log:
            r, dr = self.log_y - np.log(pred), -tangents / pred[:, None]
        else:
            r, dr = self.y - pred, -tangents
        return pred, r.reshape(S, -1), np.swapaxes(dr.reshape(S, dr.shape[1], -1), 1, 2)


def trace(predict: Callable, P: int, x_shape: tuple) -> Any:
    """The closed jaxpr of the law's ``predict(theta (P,), x)`` (traced, not compiled)."""
    return validate.predict_jaxpr(predict, P, tuple(x_shape), "float64")[0]  # the shape check's trace, if it ran


# ------------------------------------------------------------------------------------------- objective
def _rho(objective: Any, r: np.ndarray) -> np.ndarray:
    if objective.delta is None:
        return 0.5 * r * r
    a = np.abs(r)
    return np.where(a < objective.delta, 0.5 * r * r, objective.delta * (a - 0.5 * objective.delta))


def _weight(objective: Any, r: np.ndarray) -> np.ndarray:
    if objective.delta is None:
        return np.ones_like(r)
    return np.minimum(1.0, objective.delta / np.maximum(np.abs(r), 1e-30))


def _spd_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``a^{-1} b`` for the damped normal equations (positive definite: a Gram matrix plus a positive
    diagonal); NaN rows where a system is singular or not positive definite -- as the compiled solver's
    pivot-checked solve gives, which the caller treats as a failed step."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:  # some system is singular: find which, one by one
        out = np.full(b.shape, np.nan)
        for k in range(a.shape[0]):
            try:
                np.linalg.cholesky(a[k])
                out[k] = np.linalg.solve(a[k], b[k])
            except np.linalg.LinAlgError:
                pass
        return out


# ------------------------------------------------------------------------------------------- the solver
def levenberg_marquardt(ev: Evaluator, objective: Any, wf: np.ndarray, theta0: np.ndarray, lo, hi, controls):
    """The compiled :class:`LevenbergMarquardt` trip by trip, over the inits ``theta0 (S, P)`` at once. An init
    that stops leaves the batch (the compiled loop's ``vmap`` keeps it, unchanged). Returns ``(theta, f, f90)``."""
    S, P = theta0.shape
    bounded = bool(np.any(np.isfinite(lo)) or np.any(np.isfinite(hi)))
    cap = int(controls[0])
    damping, decrease, increase = float(controls[1]), float(controls[2]), float(controls[3])
    mark = max((9 * cap) // 10 - 1, 0)
    rtol = max(float(controls[4]), 100 * float(np.finfo(np.float64).eps))
    every = int(controls[5])
    lam_max = 1e12
    padded = bool(np.any(wf <= 0))
    squared = objective.delta is None
    diag_idx = np.arange(P)

    unit = squared and not padded and bool(np.all(wf == 1.0))  # plain least squares: no weights to apply

    def normal(th):
        _, r, jac = ev.raw(th)
        jt = np.swapaxes(jac, 1, 2)
        if unit:  # the common case, in as few NumPy calls as possible (each costs more than its arithmetic here)
            f = 0.5 * np.einsum("kn,kn->k", r, r)
            a = np.matmul(jt, jac)
            g = np.matmul(jt, r[:, :, None])[..., 0]
            return np.where(np.isfinite(f), f, np.inf), a, g
        if padded:  # points of weight 0 (padding) contribute nothing, even where the law is not finite
            r = np.where(wf > 0, r, 0.0)
            jac = np.where((wf > 0)[:, None], jac, 0.0)
            jt = np.swapaxes(jac, 1, 2)
        if squared:
            w, f = wf, 0.5 * ((r * r) @ wf)
        else:
            w, f = wf * _weight(objective, r), (wf * _rho(objective, r)).sum(1)
        jw = jac * w[..., None]
        a = np.matmul(jt, jw)
        g = np.matmul(np.swapaxes(jw, 1, 2), r[:, :, None])[..., 0]
        return np.where(np.isfinite(f), f, np.inf), a, g

    out_theta, out_f, out_f90 = np.zeros((S, P)), np.full(S, np.inf), np.zeros(S)
    idx = np.arange(S)  # the inits still running, in order
    cand = np.clip(theta0, lo, hi) if bounded else np.array(theta0, np.float64)
    lam = np.full(S, damping)
    stop = np.zeros(S, bool)
    theta = f = a = g = f90 = fw = None
    best = np.inf  # the lowest objective of a stopped init: the bar the hopeless inits are abandoned against
    for j in range(cap + 1):
        f_new, a_new, g_new = normal(cand)
        if j == 0:
            theta, f, a, g = cand.copy(), f_new, a_new, g_new
        else:
            ok = (f_new < f) & np.isfinite(cand).all(1)
            if ok.all():  # every step taken (the usual trip): no masked copies
                lam = np.maximum(lam / decrease, 1e-12)
                theta, f, a, g = cand, f_new, a_new, g_new
            else:
                lam = np.clip(np.where(ok, lam / decrease, lam * increase), 1e-12, lam_max)
                if ok.any():
                    theta[ok], f[ok], a[ok], g[ok] = cand[ok], f_new[ok], a_new[ok], g_new[ok]
        if j == 0 or j - 1 == mark:
            f90 = f.copy()
        if j == 0:
            fw = f.copy()
        if j > 0:
            done = stop | (lam >= lam_max) | ~np.isfinite(f)
            if done.any():
                best = min(best, float(np.min(np.where(np.isfinite(f[done]), f[done], np.inf))))
            left = cap - j  # trips left after this one: the compiled loop's pruning check (LevenbergMarquardt)
            if every > 0 and left > 0 and (j + 1) % every == 0:
                pace = np.log(fw / f) * (left / every)
                hopeless = ~done & (np.log(f / best) > pace + 1e-9)
                fw = np.where(done, fw, f)
                done = done | hopeless
            if done.any():  # converged (f90 := f), stalled, diverged or hopeless: record and drop from the batch
                out_theta[idx[done]], out_f[idx[done]], out_f90[idx[done]] = theta[done], f[done], f[done]
                keep = ~done
                if not keep.any():
                    return out_theta, out_f, out_f90
                idx, theta, f, a, g, f90, lam = idx[keep], theta[keep], f[keep], a[keep], g[keep], f90[keep], lam[keep]
                fw = fw[keep]
        a_r, g_r = a, g
        if bounded:  # the active set: parameters on a bound with the gradient pointing outwards are held
            free = ~(((theta <= lo) & (g > 0)) | ((theta >= hi) & (g < 0)))
            if not free.all():
                scale = np.maximum(np.max(np.abs(a[:, diag_idx, diag_idx]), axis=1), 1.0)
                held = ~(free[:, :, None] & free[:, None, :])
                a_r = np.where(held, 0.0, a)
                a_r[:, diag_idx, diag_idx] = np.where(free, a[:, diag_idx, diag_idx], scale[:, None])
                g_r = np.where(free, g, 0.0)
        diag = np.diagonal(a_r, axis1=1, axis2=2)
        d = np.maximum(diag, 1e-12 * (1.0 + np.max(diag, axis=1, keepdims=True)))
        damped = a_r.copy()
        damped.reshape(damped.shape[0], P * P)[:, :: P + 1] += lam[:, None] * d  # the diagonal, in place
        step = _spd_solve(damped, -g_r)
        promised = -(step * (g_r + 0.5 * np.matmul(a_r, step[:, :, None])[..., 0])).sum(1)
        stop = (lam <= GN_DAMPING) & (promised <= rtol * np.abs(f))
        cand = theta + step
        if bounded:
            cand = np.clip(cand, lo, hi)
    out_theta[idx], out_f[idx], out_f90[idx] = theta, f, f90  # the cap reached
    return out_theta, out_f, out_f90


# ------------------------------------------------------------------------------------------- the program
def eligible(cfg: Any) -> bool:
    """Whether a fit's static configuration runs on the host: the default solver on the plain multi-start search
    (no screening, validation selection, reparametrised box, penalty or single-index normal equations)."""
    return (
        isinstance(cfg.solver, LevenbergMarquardt)
        and cfg.screen is None
        and not cfg.use_val
        and cfg.early is None
        and cfg.box is None
        and cfg.pen is None
        and cfg.index is None
    )


def run(cfg: Any, args: list, shared_inits: bool) -> tuple | None:
    """The outputs of the compiled fitting program (``engine._program(cfg)``) for ``args``, computed on the host;
    ``None`` when the law uses a primitive the interpreter does not evaluate (the caller compiles instead)."""
    inits, x, y, w, wv, lo, hi, ctl = (np.asarray(a, np.float64) for a in args)
    B = x.shape[0]
    P = inits.shape[-1]
    try:
        closed = trace(
            getattr(cfg.predict, "fn", cfg.predict), P, x.shape[1:]
        )  # the function itself: its trace is cached
    except Exception:  # noqa: BLE001 -- a law this cannot evaluate (or trace) is left to the compiled path
        return None
    outs = []
    for b in range(B):
        start = inits if shared_inits else inits[b]
        try:
            ev = Evaluator(closed, cfg.objective, x[b], y[b])
        except Unsupported:
            return None
        wf = np.broadcast_to(w[b].reshape(w[b].shape + (1,) * (y[b].ndim - 1)), y[b].shape).reshape(-1)
        try:
            with np.errstate(all="ignore"):  # a diverging init's overflow is its objective's inf, not a warning
                theta, f, f90 = levenberg_marquardt(ev, cfg.objective, wf, start, lo[b], hi[b], ctl[b])
        except Unsupported:
            return None
        best = int(np.argmin(f))
        out = [theta[best], f[best], f90[best], f if cfg.keep_inits else np.zeros(0), f[best]]
        if cfg.evaluate:
            ok = np.isfinite(f[best]) and np.all(np.isfinite(theta[best]))
            th = theta[best] if ok else np.zeros(P)
            pred, r, jac = ev(th[None])
            out += [pred[0], r[0], jac[0], _weight(cfg.objective, r[0]), _rho(cfg.objective, r[0])]
        outs.append(out)
    return tuple(np.stack([o[k] for o in outs]) for k in range(len(outs[0])))


def worth_it(args: list) -> bool:
    """Small enough that NumPy's passes beat a compile: at most :data:`MAX_PROBLEMS` problems, and at most
    :data:`MAX_ELEMENTS` Jacobian entries (``problems x inits x points x P``) in all."""
    inits, y = np.shape(args[0]), np.shape(args[2])
    return y[0] <= MAX_PROBLEMS and y[0] * inits[-2] * inits[-1] * math.prod(y[1:]) <= MAX_ELEMENTS


# ------------------------------------------------------------------------------------------- when
#: ``JAXLAWS_HOST_FIRST=0`` turns the host run off: every fit compiles (as before).
HOST_ENV = "JAXLAWS_HOST_FIRST"
_SEEN: set = set()


def _key(cfg: Any, args: list, shared_inits: bool) -> tuple:
    """What the compiled program is keyed on: the configuration and the padded (bucketed) sizes."""
    inits, x = np.shape(args[0]), np.shape(args[1])
    return (
        cfg,
        shared_inits,
        inits[:-2],
        bucket(inits[-2]),
        inits[-1],
        x[0],
        bucket(x[1]),
        x[2:],
        np.shape(args[2])[2:],
    )


def first_run(cfg: Any, args: list, shared_inits: bool) -> tuple | None:
    """The fitting program's outputs from the host run when this is the first fit of its compiled-program key
    (configuration and argument shapes) in this process and the fit is eligible and small; else ``None`` (the
    caller runs the compiled program, which the next call of the same key then reuses)."""
    if os.environ.get(HOST_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    key = _key(cfg, args, shared_inits)
    if key in _SEEN or not eligible(cfg) or not worth_it(args):
        _SEEN.add(key)
        return None
    _SEEN.add(key)
    return run(cfg, args, shared_inits)
