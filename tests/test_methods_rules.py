r"""The update rules of the online mixing methods (``jaxlaws.mixing.rules``) and the cheap per-step logic
of the mixers, checked against an independent float64 NumPy transcription of the original algorithms.

What is checked, and against what
---------------------------------
The ``np_*`` functions below come from the pseudo-code of the original Aioli repository as the spec gives it
(``aioli-analysis.md`` sections 5.3-5.6 and 13.5). They are written as loops, the way the pseudo-code reads, and
they share no code with the JAX rules:

* ``one_hotish``: the LearnParams mixtures ``q_j`` (``ohf`` on ``j``, ``(1-ohf)/(k-1)`` elsewhere);
* ``allocate_counts`` / ``realised_mixtures``: the existing NumPy ``jaxlaws.train.data.allocate_exact``
  (largest remainder) and a textbook Hamilton apportionment written here. At m=7, B=8, ohf=0.75 the original's
  ``max(1, int(q_j B))`` rule gives a negative count; jaxlaws' counts must not;
* ``aioli_solve``: the LearnParams accumulation ``G[:, j] += prev - L``, ``G /= lp_rounds``, then
  ``A[i,:] = solve(W, G[i,:])`` row by row (or ``diag(G_ii / ohf)``); plus "smoothing undone": with
  ``G = A W^T`` the solve recovers ``A``;
* ``aioli_normalize``: shift by the minimum when negative, divide by the total (all-equal -> zeros, no NaN);
* ``aioli_weights``: the EMA and the cumulative exponentiated-gradient updates, whole multi-round trajectories;
* ``skillit_weights``: ``w = exp(eta G loss)``, ``p = w / sum w``;
* ``doremi_update``: reuse of absent domains' scores, ``log w += mu max(e, 0)``, softmax, smoothing;
* ``doge_scores`` (+ ``log w += s / mu``, softmax): normalised, clipped alignment scores;
* the ``aioli`` mixer's ``update`` / ``mixture`` on a scripted sequence of held-out losses (four
  configurations: m=3 defaults-like, an expected ``W`` that is not the nominal one with cumulative EG and a
  restricted prior the EG base forgets as the original's does, the carried-prior variant, and the diagonal
  ablation) against ``AioliTrainer.train``; random allocation ties against an enumeration of every tie
  order; the ``skillit`` mixer against ``SkillitTrainer.train``'s control flow (both cadences) and the
  original's 1 -> 0.5 graph rule; one ``DoReMi.gradient`` step on a tiny model (weights and gradient), and
  the ``ValueError`` of bad hyper-parameters. DoGE's clipping and random validation batch are checked in
  ``tests/test_mixing.py``.

Note: at m=3, ohf=0.5, B=8 the LearnParams allocations are exact (0.5 * 8 and 0.25 * 8 are integers);
ohf=0.6 gives expected counts 5 / 1.5 / 1.5 of 8, not the nominal 4.8 / 1.6 / 1.6.

Tolerances: JAX computes in float32, the transcriptions in float64. Unless a test states otherwise the
comparison is ``rtol=1e-5, atol=1e-6`` on O(1) quantities (float32 has a unit round-off of 6e-8; the longest
chain here -- a 2x2 to 7x7 solve with condition number <= 5, or six rounds of EG -- loses well under two
decimal digits of that). Integer outputs (counts) are compared exactly.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlaws import mixing
from jaxlaws.mixing import rules
from jaxlaws.train.data import allocate_exact
from jaxlaws.train.methods import Aioli, DoGE, DoReMi, SkillIt
from jaxlaws.train.model import init_params, per_sample_loss, preset
from jaxlaws.train.optim import OptimConfig

RTOL, ATOL = 1e-5, 1e-6

MODEL = preset("tiny", vocab_size=32, context=16, n_layers=1, d_model=32, n_heads=2, d_ff=64)
OPTIM = OptimConfig(total_steps=1000, warmup_steps=10)
COMMON = dict(model=MODEL, optim=OPTIM, batch_size=8, seq_len=16)


def close(got, want, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


# ================================================================================ NumPy transcriptions
def np_one_hotish(k: int, ohf: float) -> np.ndarray:
    """Row j: ``q = full(k, (1-ohf)/(k-1)); q[j] = ohf`` (LearnParams pseudo-code)."""
    W = np.zeros((k, k))
    for j in range(k):
        q = np.full(k, (1 - ohf) / (k - 1))
        q[j] = ohf
        W[j] = q
    return W


def np_hamilton(p, B: int) -> list[int]:
    """Textbook largest-remainder apportionment of B seats: floor of the quotas, then one more seat to each of
    the largest remainders (ties: lower index). Quotas within 1e-9 of an integer count as that integer."""
    quotas = [B * float(x) for x in p]
    counts = [math.floor(x + 1e-9) for x in quotas]
    remainders = [x - c for x, c in zip(quotas, counts)]
    for j in sorted(range(len(p)), key=lambda j: (-remainders[j], j))[: B - sum(counts)]:
        counts[j] += 1
    return counts


def np_original_counts(q, B: int) -> list[int]:
    """The original's per-batch counts for a LearnParams mixture (``trainer/aioli_trainer.py``):
    ``max(1, int(q_i B))`` for every group but the last, which takes the remainder."""
    counts = [max(1, int(q[i] * B)) for i in range(len(q) - 1)]
    counts.append(B - sum(counts))
    return counts


def np_learn_params_G(L0, losses, order, k: int, lp_rounds: int) -> np.ndarray:
    """``G[:, j] += prev - L`` after training on ``q_j``, ``prev = L``; then ``G /= lp_rounds``."""
    G = np.zeros((k, k))
    prev = np.asarray(L0, np.float64)
    for j, L in zip(order, losses):
        L = np.asarray(L, np.float64)
        G[:, j] += prev - L
        prev = L
    return G / lp_rounds


def np_solve_A(G, W, diagonal: bool) -> np.ndarray:
    """``A[i,:] = solve(W, G[i,:])`` for each i; diagonal: ``A = diag(G_ii / W_ii)`` (the original divides by
    ohf, which is ``W_ii`` for the nominal W)."""
    k = G.shape[0]
    A = np.zeros((k, k))
    if diagonal:
        for i in range(k):
            A[i, i] = G[i, i] / W[i, i]
        return A
    for i in range(k):
        A[i, :] = np.linalg.solve(W, G[i, :])
    return A


def np_normalize(A) -> np.ndarray:
    A = np.array(A, np.float64)
    if A.min() < 0:
        A = A - A.min()
    return A / A.sum()


def np_aioli_trajectory(As, eta: float, ema, base) -> list[np.ndarray]:
    """The EG part of the Aioli loop over rounds t = 0, 1, ...: the mixture p of each round."""
    base = np.asarray(base, np.float64)
    ps, Abar, w = [], None, None
    for t, A in enumerate(As):
        A = np.asarray(A, np.float64)
        if ema is not None:
            Abar = A if t == 0 else (1 - ema) * A + ema * Abar
            w = base * np.exp(eta * Abar.sum(0))
        else:
            w = (base if t == 0 else w) * np.exp(eta * A.sum(0))
        ps.append(w / w.sum())
    return ps


def np_skillit(G, loss_arr, eta: float) -> np.ndarray:
    G, loss_arr = np.asarray(G, np.float64), np.asarray(loss_arr, np.float64)
    k = G.shape[0]
    w = np.zeros(k)
    for i in range(k):
        w[i] = math.exp(eta * sum(G[i, j] * loss_arr[j] for j in range(k)))
    return w / w.sum()


def np_doremi(w, excess, prev_excess, present, mu: float, c: float):
    """Reuse the previous score of an absent domain, ``log w += mu max(e, 0)``, softmax, smooth."""
    k = len(w)
    e = np.array(excess, np.float64)
    for i in range(k):
        if not present[i]:
            e[i] = prev_excess[i]
    log_w = np.log(np.asarray(w, np.float64)) + mu * np.maximum(e, 0.0)
    w_new = np.exp(log_w) / np.exp(log_w).sum()
    return (1 - c) * w_new + c / k, e


def np_doge_scores(dots, norms, lr: float) -> np.ndarray:
    s = np.asarray(dots, np.float64)
    s = lr * s / (np.mean(np.asarray(norms, np.float64)) + 1e-6)
    return np.clip(s, 0.0, 5 * lr)


def np_softmax(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.exp(x - x.max()) / np.exp(x - x.max()).sum()


# ================================================================================ one_hotish / allocation
@pytest.mark.parametrize("m,ohf", [(2, 0.625), (3, 0.5), (7, 0.75), (5, 1.0), (4, 0.3)])
def test_one_hotish(m, ohf):
    close(rules.one_hotish(m, ohf), np_one_hotish(m, ohf), rtol=1e-6, atol=1e-7)


# (m, B) pairs of the allocation tests: each pair is one compiled, vmapped call over many mixtures
ALLOC_SIZES = [(2, 1), (2, 7), (3, 8), (3, 6), (4, 13), (5, 16), (7, 8), (7, 40), (9, 64)]


_realised = jax.jit(rules.realised_mixtures, static_argnums=1)


@functools.cache
def _counts_fn(B: int):
    return jax.jit(jax.vmap(lambda p: rules.allocate_counts(p, B)))


def _counts(P: np.ndarray, B: int) -> np.ndarray:
    return np.asarray(_counts_fn(B)(jnp.asarray(P, jnp.float32)))


@pytest.mark.slow
def test_allocate_counts_matches_allocate_exact_on_random_mixtures():
    rng = np.random.default_rng(0)
    n = 0
    for m, B in ALLOC_SIZES:
        P = np.concatenate([rng.dirichlet(np.full(m, a), size=15) for a in (0.1, 1.0, 10.0)]).astype(np.float32)
        P = P / P.sum(1, keepdims=True)
        got = _counts(P, B)
        for p, c in zip(P, got):
            np.testing.assert_array_equal(c, allocate_exact(p.astype(np.float64), B), err_msg=f"p={p.tolist()} B={B}")
            np.testing.assert_array_equal(c, np_hamilton(p, B), err_msg=f"p={p.tolist()} B={B}")
            assert c.sum() == B and (c >= 0).all() and (np.abs(c - B * p) < 1).all()
            n += 1
    assert n == 45 * len(ALLOC_SIZES)


@pytest.mark.slow
def test_allocate_counts_returns_the_composition_of_exactly_representable_mixtures():
    """``p = c / B`` for an integer composition ``c`` of B must allocate exactly ``c`` (float32 products such as
    5/8 * 8 or 1/6 * 6 must not be floored one below)."""
    rng = np.random.default_rng(1)
    for m, B in ALLOC_SIZES + [(6, 6), (7, 21), (3, 30)]:
        C = rng.multinomial(B, np.full(m, 1.0 / m), size=30)
        P = (C / B).astype(np.float32)
        got = _counts(P, B)
        for p, c, g in zip(P, C, got):
            np.testing.assert_array_equal(g, c, err_msg=f"c={c.tolist()} B={B}")
            np.testing.assert_array_equal(allocate_exact(p.astype(np.float64), B), c)


def test_m7_learnparams_allocation_original_goes_negative_jaxlaws_does_not():
    m, B, ohf = 7, 8, 0.75
    Q = np_one_hotish(m, ohf)
    original = [np_original_counts(Q[j], B) for j in range(m)]
    assert min(min(c) for c in original) == -3  # the original's allocation: 8 - (6 + 5 * 1) = -3
    assert original[m - 1] == [1, 1, 1, 1, 1, 1, 2]  # target = last group: (0.125 x 6, 0.25)
    got = np.asarray(jax.vmap(lambda q: rules.allocate_counts(q, B))(rules.one_hotish(m, ohf)))
    for j in range(m):
        assert (got[j] >= 0).all() and got[j].sum() == B
        assert (np.abs(got[j] - B * Q[j]) < 1).all()
        np.testing.assert_array_equal(got[j], allocate_exact(Q[j], B))
        np.testing.assert_array_equal(got[j], np_hamilton(Q[j], B))
    close(rules.realised_mixtures(rules.one_hotish(m, ohf), B), got / B, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "m,ohf,B", [(2, 0.625, 8), (3, 0.6, 8), (7, 0.75, 8), (5, 2 / 3, 6), (9, 0.4, 10), (7, 0.3, 16)]
)
def test_realised_learnparams_mixtures_follow_hamilton(m, ohf, B):
    """The realised W of LearnParams for many settings, including ones where float32 ``ohf * B`` lands just
    below an integer (e.g. 2/3 * 6 = 3.9999998)."""
    counts = np.array([np_hamilton(q, B) for q in np_one_hotish(m, ohf)])
    got = np.asarray(_realised(rules.one_hotish(m, ohf), B), np.float64)
    np.testing.assert_array_equal(np.rint(got * B), counts)  # the counts, exactly
    close(got, counts / B, rtol=0, atol=1e-7)  # count / B in float32
    if abs(ohf * B - round(ohf * B)) < 1e-9:  # an integer quota is met exactly
        assert (np.diag(counts) == round(ohf * B)).all()


def test_realised_mixtures_rows_are_counts_over_B():
    rng = np.random.default_rng(2)
    for m, B in [(2, 8), (3, 8), (3, 6), (5, 13), (7, 8), (9, 32)]:
        q = rng.dirichlet(np.ones(m), size=m).astype(np.float32)
        q = q / q.sum(1, keepdims=True)
        want = np.stack([allocate_exact(r.astype(np.float64), B) for r in q]) / B
        close(_realised(jnp.asarray(q), B), want, rtol=0, atol=1e-7)


def test_realised_learnparams_mixtures_m3():
    """m=3, ohf=0.5, B=8: 0.5 * 8 and 0.25 * 8 are integers, so the realised rows *equal* the nominal q_j (spec
    13.5: "m=3 (0.5) exact"). With ohf=0.6 they differ, and the realised W is not symmetric."""
    R = np.asarray(rules.realised_mixtures(rules.one_hotish(3, 0.5), 8), np.float64)
    np.testing.assert_array_equal(R, np_one_hotish(3, 0.5))
    R = np.asarray(rules.realised_mixtures(rules.one_hotish(3, 0.6), 8), np.float64)
    want = np.array([[5, 2, 1], [2, 5, 1], [2, 1, 5]]) / 8
    np.testing.assert_array_equal(R, want)
    assert np.abs(R - np_one_hotish(3, 0.6)).max() > 0.02
    assert not np.allclose(R, R.T)


# ================================================================================ Aioli: LearnParams solve
def _well_conditioned_W(rng, k):
    W = rng.dirichlet(np.ones(k), size=k) * 0.5 + 0.5 * np.eye(k)  # rows on the simplex, diagonally dominant
    return W


@pytest.mark.parametrize("k,seed", [(2, 0), (3, 1), (7, 2)])
def test_aioli_solve_matches_rowwise_solve(k, seed):
    rng = np.random.default_rng(seed)
    # G from the LearnParams accumulation itself: lp_rounds permutations, random held-out losses
    lp_rounds = 3
    order = np.concatenate([rng.permutation(k) for _ in range(lp_rounds)])
    L0 = rng.uniform(3, 4, k)
    losses = L0 - np.cumsum(rng.uniform(-0.02, 0.1, (len(order), k)), axis=0)
    G = np_learn_params_G(L0, losses, order, k, lp_rounds)
    for W in (np_one_hotish(k, 0.625), _well_conditioned_W(rng, k)):
        W32, G32 = W.astype(np.float32), G.astype(np.float32)
        want = np_solve_A(G32.astype(np.float64), W32.astype(np.float64), diagonal=False)
        got = rules.aioli_solve(jnp.asarray(G32), jnp.asarray(W32), False)
        close(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
        if not np.allclose(W, W.T):  # a transposed solve would be a different matrix: the test can tell
            assert np.abs(np_solve_A(G, W.T, False) - want).max() > 1e-3


@pytest.mark.parametrize("k,ohf,B", [(2, 0.625, 8), (3, 0.5, 8), (3, 0.6, 8), (7, 0.75, 8), (5, 0.5, 16)])
def test_aioli_solve_undoes_the_smoothing(k, ohf, B):
    """A true A; training on the realised q_j lowers group i's loss by G[i, j] = sum_l A[i, l] W[j, l]."""
    rng = np.random.default_rng(k * 100 + B)
    A = rng.normal(0, 0.05, (k, k)) + np.diag(rng.uniform(0.05, 0.2, k))
    W = np.array([np_hamilton(q, B) for q in np_one_hotish(k, ohf)], np.float64) / B
    G = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            G[i, j] = sum(A[i, l] * W[j, l] for l in range(k))
    np.testing.assert_allclose(G, A @ W.T, atol=1e-15)
    close(np_solve_A(G, W, False), A, rtol=1e-10, atol=1e-12)  # the transcription itself undoes it
    got = rules.aioli_solve(jnp.asarray(G, jnp.float32), rules.realised_mixtures(rules.one_hotish(k, ohf), B))
    close(got, A, rtol=1e-4, atol=1e-6)  # float32 G and W, cond(W) <= 5: ~1e-6 absolute on A ~ 0.1
    if not np.allclose(W, np_one_hotish(k, ohf)):  # the nominal W would not recover A
        assert np.abs(np_solve_A(G, np_one_hotish(k, ohf), False) - A).max() > 1e-3


def test_aioli_solve_diagonal():
    rng = np.random.default_rng(3)
    for k, ohf in [(2, 0.625), (3, 0.5), (7, 0.75)]:
        G = rng.normal(0.05, 0.05, (k, k))
        Wn = np_one_hotish(k, ohf)
        want = np.zeros((k, k))
        for i in range(k):  # the original: diag(G_ii / ohf)
            want[i, i] = G[i, i] / ohf
        got = rules.aioli_solve(jnp.asarray(G, jnp.float32), jnp.asarray(Wn, jnp.float32), True)
        close(got, want)
        # generalisation: G_ii / W_ii with the realised W
        Wr = np.asarray(rules.realised_mixtures(jnp.asarray(Wn, jnp.float32), 8), np.float64)
        got = rules.aioli_solve(jnp.asarray(G, jnp.float32), jnp.asarray(Wr, jnp.float32), True)
        close(got, np_solve_A(G, Wr, True))


# ================================================================================ Aioli: normalisation
def test_aioli_normalize_random():
    rng = np.random.default_rng(4)
    for shift in (-0.3, 0.0, 0.5):  # mostly negative entries, mixed, all positive (no shift)
        for k in (2, 3, 7):
            A = rng.normal(shift, 0.2, (k, k))
            got = rules.aioli_normalize(jnp.asarray(A, jnp.float32))
            want = np_normalize(A.astype(np.float32))
            close(got, want)
            assert abs(float(np.asarray(got).sum()) - 1) < 1e-5 and float(np.asarray(got).min()) >= 0


def test_aioli_normalize_positive_matrix_is_not_shifted():
    A = np.array([[0.2, 0.1], [0.05, 0.4]])
    close(rules.aioli_normalize(jnp.asarray(A, jnp.float32)), A / A.sum())


@pytest.mark.parametrize("value", [0.0, 0.7, -1.3])
def test_aioli_normalize_all_equal_gives_zeros(value):
    got = np.asarray(rules.aioli_normalize(jnp.full((3, 3), value, jnp.float32)))
    assert not np.isnan(got).any()
    if value > 0:  # a positive constant is not shifted: mass 1 spread evenly
        close(got, np.full((3, 3), 1 / 9))
    else:  # zero after the shift: zeros, not 0/0
        np.testing.assert_array_equal(got, np.zeros((3, 3)))


# ================================================================================ Aioli: EMA / EG
@pytest.mark.parametrize("ema", [0.5, 0.1, 0.0, None])
@pytest.mark.parametrize("base_kind", ["uniform", "prior"])
def test_aioli_weights_trajectory(ema, base_kind):
    rng = np.random.default_rng(5)
    k, T, eta = 3, 6, 2.0
    base = np.full(k, 1 / k) if base_kind == "uniform" else np.array([0.6, 0.3, 0.1])
    As = [np_normalize(rng.normal(0, 1, (k, k))) for _ in range(T)]
    want = np_aioli_trajectory(As, eta, ema, base)
    A_bar = jnp.zeros((k, k), jnp.float32)
    w = jnp.asarray(rng.dirichlet(np.ones(k)), jnp.float32)  # junk before the first round: must be ignored
    for t, A in enumerate(As):
        p, A_bar = rules.aioli_weights(
            jnp.asarray(A, jnp.float32), A_bar, w, jnp.asarray(t == 0), eta, ema, jnp.asarray(base, jnp.float32)
        )
        close(p, want[t])
        w = p
    # the trajectory moved: a rule that ignored A (or the memory) would fail the comparison above
    assert np.abs(want[-1] - base).max() > 1e-3


def test_aioli_weights_large_eta_does_not_overflow():
    k = 4
    rng = np.random.default_rng(6)
    A = np_normalize(rng.normal(0, 1, (k, k))) * 3
    eta = 250.0  # exp(eta * colsum) ~ exp(600) overflows float32 (and is fine in float64)
    want = np_aioli_trajectory([A], eta, 0.1, np.full(k, 1 / k))[0]
    p, _ = rules.aioli_weights(
        jnp.asarray(A, jnp.float32),
        jnp.zeros((k, k)),
        jnp.full(k, 0.25),
        jnp.asarray(True),
        eta,
        0.1,
        jnp.full(k, 0.25),
    )
    assert np.isfinite(np.asarray(p)).all()
    # exponent eta * colsum is ~ 1e2..1e3: float32 rounding of A (rel 6e-8) moves it by up to ~1e-4
    close(p, want, rtol=1e-3, atol=1e-7)


# ================================================================================ Skill-It / DoReMi / DoGE
def test_skillit_weights():
    rng = np.random.default_rng(7)
    for k in (2, 3, 7):
        for eta in (0.2, 1.0, 5.0):
            G = rng.uniform(-0.05, 0.3, (k, k))
            loss_arr = rng.uniform(2, 4, (3, k)).sum(0)  # sum of the last 3 loss vectors
            got = rules.skillit_weights(jnp.asarray(G, jnp.float32), jnp.asarray(loss_arr, jnp.float32), eta)
            close(got, np_skillit(G, loss_arr, eta), rtol=1e-4 if eta == 5.0 else RTOL)
            # exponent eta * G @ loss ~ 5 * 3 = 15 at eta=5: float32 error ~1e-6 relative -> 1e-4 rtol on p


@pytest.mark.parametrize("mu,c", [(0.01, 1e-3), (1.0, 1e-3), (5.0, 0.1), (0.5, 0.0)])
def test_doremi_update_trajectory(mu, c):
    rng = np.random.default_rng(8)
    k, steps = 4, 12
    w_np = np.full(k, 1 / k)
    prev_np = np.zeros(k)
    w_jx, prev_jx = jnp.full(k, 1 / k, jnp.float32), jnp.zeros(k, jnp.float32)
    for _ in range(steps):
        excess = rng.normal(0.1, 0.5, k).astype(np.float32)
        present = rng.uniform(size=k) > 0.3
        w_np, prev_np = np_doremi(w_np, excess, prev_np, present, mu, c)
        w_jx, prev_jx = rules.doremi_update(w_jx, jnp.asarray(excess), prev_jx, jnp.asarray(present), mu, c)
        close(prev_jx, prev_np)  # the score used, unclipped
        close(w_jx, w_np, rtol=1e-4 if mu == 5.0 else RTOL)  # mu*e up to ~10 over 12 steps: looser at mu=5
    assert np.abs(w_np - 1 / k).max() > 1e-4 or mu == 0.01


def test_doremi_absent_domain_reuses_previous_score():
    w = jnp.full(3, 1 / 3, jnp.float32)
    w1, e = rules.doremi_update(
        w, jnp.array([0.0, 0.3, -0.2]), jnp.array([0.8, 0.1, 0.1]), jnp.array([False, True, True]), 1.0, 0.0
    )
    close(e, [0.8, 0.3, -0.2])
    want, _ = np_doremi(np.full(3, 1 / 3), [0.0, 0.3, -0.2], [0.8, 0.1, 0.1], [False, True, True], 1.0, 0.0)
    close(w1, want)
    assert float(w1[0]) > float(w1[1]) > float(w1[2])


def test_doge_scores_and_update():
    rng = np.random.default_rng(9)
    k, mu = 3, 0.01
    log_w_np, log_w_jx = np.zeros(k), jnp.zeros(k, jnp.float32)
    clipped = {"low": 0, "high": 0}
    for _step in range(10):
        lr = float(rng.uniform(1e-4, 3e-3))
        norms = rng.uniform(0.2, 1.0, k).astype(np.float32)
        dots = (rng.normal(0.5, 4.0, k) * norms.mean()).astype(np.float32)
        want = np_doge_scores(dots, norms, lr)
        got = rules.doge_scores(jnp.asarray(dots), jnp.asarray(norms), jnp.float32(lr))
        close(got, want, rtol=RTOL, atol=1e-6 * lr)  # scores are O(lr)
        clipped["low"] += int((want == 0).sum())
        clipped["high"] += int((want == 5 * lr).sum())
        log_w_np = log_w_np + want / mu
        log_w_jx = log_w_jx + got / mu
        close(rules.softmax_weights(log_w_jx), np_softmax(log_w_np))
    assert clipped["low"] > 0 and clipped["high"] > 0  # both clip bounds were exercised


# ================================================================================ Aioli mixer
def np_expected_counts(p, B: int) -> np.ndarray:
    """Hamilton's counts with ties broken uniformly at random, in expectation: the mean of the textbook
    apportionment over every order of tie-breaking (all permutations of the groups)."""
    m = len(p)
    total = np.zeros(m)
    perms = list(itertools.permutations(range(m)))
    for perm in perms:
        quotas = [B * float(x) for x in p]
        counts = [math.floor(x + 1e-6) for x in quotas]
        rem = [round(x - c, 5) for x, c in zip(quotas, counts)]
        rank = {g: i for i, g in enumerate(perm)}
        for j in sorted(range(m), key=lambda j: (-rem[j], rank[j]))[: B - sum(counts)]:
            counts[j] += 1
        total += counts
    return total / len(perms)


AIOLI_CONFIGS = {
    # m=3 defaults with shorter LearnParams: the expected LearnParams mixtures are the nominal ones
    "m3_ohf0.5_ema": dict(m=3, eta=0.1, ema=0.5, lp_rounds=2, lp_steps=3, update_steps=100, ohf=0.5),
    # expected W != nominal (ohf 0.6: counts 5 / 1.5 / 1.5 of 8), cumulative EG, a restricted prior that the
    # EG base forgets (as the original resets weights_init to ones); larger eta so the rounds move p visibly
    "m3_ohf0.6_cumulative_prior": dict(
        m=3,
        eta=3.0,
        ema=None,
        lp_rounds=2,
        lp_steps=3,
        update_steps=100,
        ohf=0.6,
        prior=(0.5, 0.3, 0.2),
        prior_steps=50,
    ),
    # the jaxlaws variant that carries the prior into the EG base
    "m3_carry_prior": dict(
        m=3,
        eta=3.0,
        ema=0.5,
        lp_rounds=2,
        lp_steps=3,
        update_steps=100,
        ohf=0.5,
        prior=(0.5, 0.3, 0.2),
        prior_steps=50,
        carry_prior=True,
    ),
    # the diagonal ablation, m=4, three LearnParams rounds
    "m4_diagonal": dict(m=4, eta=1.0, ema=0.1, lp_rounds=3, lp_steps=2, update_steps=100, ohf=0.7, diagonal=True),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(AIOLI_CONFIGS))
def test_aioli_mixer_rounds(name):
    """Aioli's rounds against the transcription of ``AioliTrainer.train`` / ``learn_params_subroutine``, driven
    by ``update(step=s, losses=...)`` at the steps ``observes`` names (every other step is a no-op)."""
    cfg = dict(AIOLI_CONFIGS[name])
    m = cfg.pop("m")
    B, total = 8, 1000
    mixer = mixing.aioli(m, total_steps=total, batch_size=B, **cfg)
    hp = mixer.hparams
    K, lp, upd, p0 = hp["lp_rounds"] * m, hp["lp_steps"], hp["update_steps"], hp["prior_steps"]
    rng = np.random.default_rng(10)
    mixture = jax.jit(mixer.mixture)

    Q = np_one_hotish(m, hp["ohf"])
    W = np.array([np_expected_counts(q, B) for q in Q]) / B  # expected LearnParams mixtures
    prior = None if cfg.get("prior") is None else np.asarray(cfg["prior"], np.float64)
    start = np.full(m, 1 / m) if prior is None else prior
    base = prior if cfg.get("carry_prior") else np.full(m, 1 / m)  # the original: weights_init = ones

    state = mixer.init(jax.random.key(0))
    p, exact = mixture(state)
    close(p, start)
    assert not bool(exact)
    flags = np.asarray(mixer.observes(jnp.arange(total)))
    assert not flags[:p0].any() and flags[p0]

    n_rounds = 3
    As, orders = [], []
    loss = rng.uniform(3.0, 4.0, m)
    for t in range(n_rounds):
        s0 = p0 + t * upd
        assert flags[s0] and not flags[s0 + 1] and not flags[s0 + K * lp + 1]
        same = mixer.update(state, step=s0 + 1, losses=jnp.full(m, 99.0))  # not an observation step
        assert all(
            (np.asarray(getattr(same, f)) == np.asarray(getattr(state, f))).all() for f in state._fields if f != "key"
        )
        L0 = loss
        state = mixer.update(state, step=s0, losses=jnp.asarray(L0, jnp.float32))
        order = np.asarray(state.order)
        assert order.shape == (K,) and bool(state.in_lp) and int(state.phase) == 0
        for r in range(hp["lp_rounds"]):  # lp_rounds random permutations of the groups, concatenated
            assert sorted(order[r * m : (r + 1) * m].tolist()) == list(range(m))
        orders.append(order)
        seg_losses = []
        for k in range(K):
            q, exact = mixture(state)
            assert bool(exact)
            close(q, Q[order[k]], rtol=1e-6, atol=1e-7)  # nominal q_{order[phase]}
            loss = (loss - rng.uniform(-0.02, 0.08, m)).astype(np.float32).astype(np.float64)
            seg_losses.append(loss)
            assert flags[s0 + (k + 1) * lp]
            state = mixer.update(state, step=s0 + (k + 1) * lp, losses=jnp.asarray(loss, jnp.float32))
        assert not bool(state.in_lp) and int(state.t) == t + 1
        L0_32 = np.asarray(L0, np.float32).astype(np.float64)
        G = np_learn_params_G(L0_32, seg_losses, order, m, hp["lp_rounds"])
        A = np_solve_A(G, W, hp["diagonal"])
        if hp["normalize"]:
            A = np_normalize(A)
        As.append(A)
        # A_hist[t] is the normalised A. G is a sum of float32 loss differences (~1e-7 absolute each on losses
        # ~3.5, i.e. ~1e-5 relative to decreases ~0.03): compare the normalised A to 1e-4 relative.
        close(state.A_hist[t], A, rtol=1e-4, atol=2e-6)
        p_want = np_aioli_trajectory(As, hp["eta"], hp["ema"], base)[-1]
        close(state.p, p_want, rtol=1e-4, atol=1e-6)
        close(state.p_hist[t], p_want, rtol=1e-4, atol=1e-6)
        p, exact = mixture(state)
        close(p, np.asarray(state.p))
        assert not bool(exact)

    assert np.abs(p_want - start).max() > 1e-3  # the mixture moved
    assert any((a != orders[0]).any() for a in orders[1:])  # a fresh order each round
    if name == "m3_ohf0.6_cumulative_prior":
        # the nominal W gives a different A here, so the comparison above pins the expected W
        A_nominal = np_normalize(np_solve_A(G, Q, False))
        assert np.abs(A_nominal - As[-1]).max() > 1e-3
    assert mixer.update._cache_size() <= 2  # eager calls do not retrace


def test_restricted_aioli_leaves_the_prior_band_as_the_original():
    """The original resets the EG base to uniform after the prior, so with a normalised A (column sums in
    [0, 1]) and an EMA the mixture lies in the e^eta odds band around *uniform*, whatever the prior; carrying
    the prior as the base confines it to the band around the prior instead (issue: restricted == grid)."""
    kw = dict(
        total_steps=400,
        batch_size=8,
        eta=0.2,
        ema=0.1,
        lp_rounds=1,
        lp_steps=2,
        update_steps=100,
        ohf=0.625,
        prior=(0.9, 0.1),
        prior_steps=100,
    )
    A = np.array([[0.1, 0.6], [0.0, 0.3]])  # normalised: column sums 0.1 / 0.9
    for carry in (False, True):
        mixer = mixing.aioli(2, carry_prior=carry, **kw)
        st = mixer.init(jax.random.key(0))
        st = st._replace(G=jnp.zeros((2, 2)))
        # one round, with losses whose decreases give G = A W^T (so the solve returns A)
        W = np.array([np_expected_counts(q, 8) for q in np_one_hotish(2, 0.625)]) / 8
        G = A @ W.T
        st = mixer.update(st, step=100, losses=jnp.zeros(2))
        L = np.zeros(2)
        for k, j in enumerate(np.asarray(st.order)):
            L = L - G[:, j]
            st = mixer.update(st, step=100 + 2 * (k + 1), losses=jnp.asarray(L, jnp.float32))
        base = np.array([0.9, 0.1]) if carry else np.full(2, 0.5)
        want = base * np.exp(0.2 * A.sum(0))
        close(st.p, want / want.sum(), rtol=1e-4, atol=1e-6)
    p_orig = np.full(2, 0.5) * np.exp(0.2 * A.sum(0))
    p_orig /= p_orig.sum()
    assert p_orig.max() / p_orig.min() <= np.exp(0.2) + 1e-9 and p_orig[1] > 0.5  # left the prior


@pytest.mark.slow
def test_allocation_ties_are_broken_at_random():
    """With a key, tied remainders get the extra seat uniformly at random: at m=7, ohf=0.75, B=8 each of the six
    off-groups gets 1 of the 2 spare seats with probability 1/3 (lowest-index ties: always groups 1 and 2);
    over 3000 draws the frequencies are within 5 standard errors of 1/3."""
    q = np.asarray(np_one_hotish(7, 0.75)[0])
    keys = jax.random.split(jax.random.key(0), 3000)
    counts = np.asarray(jax.vmap(lambda k: rules.allocate_counts(jnp.asarray(q, jnp.float32), 8, k))(keys))
    assert (counts.sum(1) == 8).all() and (counts[:, 0] == 6).all() and (counts >= 0).all()
    freq = counts[:, 1:].mean(0)
    se = np.sqrt((1 / 3) * (2 / 3) / 3000)
    assert np.abs(freq - 1 / 3).max() < 5 * se, freq
    np.testing.assert_allclose(rules.expected_counts(q, 8), np_expected_counts(q, 8), atol=1e-12)
    lowest = np.asarray(rules.allocate_counts(jnp.asarray(q, jnp.float32), 8))
    assert lowest.tolist() == [6, 1, 1, 0, 0, 0, 0]


# ================================================================================ Skill-It mixer
def np_skillit_original(G, loss_at, eta: float, update_steps: int, every: int, window: int, total: int):
    """``SkillitTrainer.train``'s control flow with steps counted as updates done (``loss_at(c)``: the held-out
    losses after ``c`` updates, where the original evaluates after ``c + 1``): records at ``c % every == 0``,
    then after each ``update_steps`` the last ``window`` records summed."""
    hist, all_losses, counter = [], [], 0
    while True:
        for _ in range(update_steps):
            if counter % every == 0:
                all_losses.append(loss_at(counter))
            counter += 1
            if counter == total:
                return hist
        idx = len(all_losses)
        hist.append(np_skillit(G, np.sum(all_losses[max(0, idx - window) : idx], axis=0), eta))


@pytest.mark.parametrize("update_steps,eval_steps,window", [(100, 25, 3), (50, 25, 3), (60, 20, 1)])
@pytest.mark.parametrize("align", ["original", "latest"])
def test_skillit_mixer(update_steps, eval_steps, window, align):
    m, eta, total = 3, 0.2, 4 * update_steps + 10
    rng = np.random.default_rng(11)
    G = rng.uniform(0.0, 0.4, (m, m))
    mixer = mixing.skillit(
        G, total_steps=total, eta=eta, update_steps=update_steps, window=window, eval_steps=eval_steps, align=align
    )
    state = mixer.init(jax.random.key(0))
    p, exact = mixer.mixture(state)
    close(p, np_skillit(G, np.ones(m), eta))  # initial w = exp(eta G 1)
    assert not bool(exact)
    table = rng.uniform(2.0, 4.0, (total, m)).astype(np.float32)
    for s in range(total):
        state = mixer.update(state, step=s, losses=jnp.asarray(table[s]))
    if align == "original":
        want = np_skillit_original(
            G, lambda c: table[c].astype(np.float64), eta, update_steps, eval_steps, window, total
        )
    else:  # records at every eval_steps (not 0); an update includes the record of its own step
        want, rec = [], []
        for s in range(1, total):
            if s % eval_steps == 0:
                rec.append(table[s].astype(np.float64))
            if s % update_steps == 0:
                want.append(np_skillit(G, np.sum(rec[-window:], axis=0), eta))
    assert int(state.n_up) == len(want) == 4
    close(state.p_hist, np.stack(want))
    close(mixer.mixture(state)[0], want[-1])
    assert mixer.update._cache_size() == 1


def test_load_graph_applies_the_original_rule(tmp_path):
    """``SkillitTrainer.train`` sets off-diagonal entries equal to 1 to 0.5 when it loads a graph."""
    G = np.array([[1.0, 1.0, 0.2], [0.3, 1.0, 1.0], [1.0, 0.0, 0.5]])
    np.save(tmp_path / "g.npy", G)
    want = G.copy()
    for i in range(3):
        for j in range(3):
            if i != j and want[i, j] == 1:
                want[i, j] = 0.5
    np.testing.assert_array_equal(mixing.load_graph(tmp_path / "g.npy", 3), want)
    assert mixing.load_graph(tmp_path / "g.npy", 3)[0, 0] == 1.0  # the diagonal is kept


# ================================================================================ DoReMi policy: one step
@pytest.mark.slow
def test_doremi_policy_step():
    """One ``DoReMi.gradient`` step on a tiny model: the new weights follow the transcription from the per-domain
    mean losses of proxy and reference (domain 2 is absent from the batch and keeps its previous score), and the
    gradient is that of sum_i w_i mean_{n in i} loss_n with the *new* weights."""
    from jaxlaws.train.methods.base import StepContext

    m, B = 3, 8
    pol = DoReMi(m=m, **COMMON, mu=2.0, smoothing=0.05)
    # two parameter sets of the model's shapes (random values; tracing the init without compiling it is cheap)
    shapes = jax.eval_shape(lambda: init_params(MODEL, jax.random.key(0)))
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    rng = np.random.default_rng(12)
    ref, proxy = (
        jax.tree_util.tree_unflatten(treedef, [jnp.asarray(rng.normal(0, 0.3, s.shape), s.dtype) for s in leaves])
        for _ in range(2)
    )
    # per-sequence losses, and the gradient of their c-weighted sum: one compiled program
    loss_and_grad = jax.jit(
        lambda p, x, c: (per_sample_loss(p, MODEL, x), jax.grad(lambda q: per_sample_loss(q, MODEL, x) @ c)(p))
    )
    state = pol.init(jax.random.key(0), extra=pol.prepare_extra(ref))
    prev_e = np.array([0.3, -0.1, 0.25], np.float32)
    w0 = np.array([0.5, 0.3, 0.2], np.float32)
    state = state._replace(mix=state.mix._replace(prev_e=jnp.asarray(prev_e), w=jnp.asarray(w0)))
    inputs = jnp.asarray(rng.integers(0, 32, (B, 17)), jnp.int32)
    gids = np.array([0, 1, 0, 0, 1, 1, 1, 0], np.int32)  # group 2 absent
    ctx = StepContext(proxy, inputs, jnp.asarray(gids), jnp.asarray(0, jnp.int32), jax.random.key(3), None)
    _, grads, new = jax.jit(pol.gradient)(state, ctx)

    zero = jnp.zeros(B, jnp.float32)
    l_proxy = np.asarray(loss_and_grad(proxy, inputs, zero)[0], np.float64)
    l_ref = np.asarray(loss_and_grad(ref, inputs, zero)[0], np.float64)
    assert np.abs(l_proxy - l_ref).max() > 0.05  # the excess is not trivially 0
    excess, present = np.zeros(m), np.zeros(m, bool)
    for i in range(m):
        rows = gids == i
        present[i] = rows.any()
        if present[i]:
            excess[i] = l_proxy[rows].mean() - l_ref[rows].mean()
    w_want, e_want = np_doremi(w0, excess, prev_e, present, 2.0, 0.05)
    new = new.mix
    close(new.prev_e, e_want, rtol=1e-4, atol=1e-5)  # differences of ~3.5 losses in float32
    close(new.w, w_want, rtol=1e-4, atol=1e-5)
    close(new.w_sum, w_want, rtol=1e-4, atol=1e-5)
    assert int(new.n) == 1

    # the gradient of sum_i w_i mean_{n in i} loss_n = sum_n (w_{g_n} / count_{g_n}) loss_n, new weights
    counts = np.bincount(gids, minlength=m)
    coef = jnp.asarray([w_want[g] / counts[g] for g in gids], jnp.float32)
    want_grads = loss_and_grad(proxy, inputs, coef)[1]
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(want_grads)):
        # two float32 programs summing the same 8 terms in possibly different orders
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-6)


# ================================================================================ hyper-parameter checks
def _aioli(**kw):
    cfg = dict(m=3, eta=0.1, ema=0.5, lp_rounds=2, lp_steps=3, update_steps=100, ohf=0.5)
    cfg.update(kw)
    return Aioli(**COMMON, **cfg)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(eta=0.0), "eta must be > 0"),
        (dict(eta=-0.1), "eta must be > 0"),
        (dict(ohf=1 / 3), r"one_hot_factor \(ohf\) must be in \(1/m, 1\]"),
        (dict(ohf=0.2), r"one_hot_factor \(ohf\) must be in \(1/m, 1\]"),
        (dict(ohf=1.01), r"one_hot_factor \(ohf\) must be in \(1/m, 1\]"),
        (dict(update_steps=18), r"update_steps=18 must exceed .* lp_rounds \* lp_steps \* m = 18"),
        (dict(update_steps=5), r"update_steps=5 must exceed"),
    ],
)
def test_aioli_bad_hyperparameters(kw, match):
    with pytest.raises(ValueError, match=match):
        _aioli(**kw)


def test_aioli_boundary_hyperparameters_are_accepted():
    _aioli(ohf=1.0)
    _aioli(ohf=0.34)
    _aioli(update_steps=19)  # one step more than LearnParams' 2 * 3 * 3 = 18


@pytest.mark.parametrize(
    "cls,kw,match",
    [
        (SkillIt, dict(eta=0.0), "skillit: eta must be > 0"),
        (SkillIt, dict(eta=-1.0), "skillit: eta must be > 0"),
        (DoReMi, dict(mu=0.0), r"doremi: mu \(the step size\) must be > 0"),
        (DoReMi, dict(mu=-0.01), r"doremi: mu \(the step size\) must be > 0"),
        (DoGE, dict(mu=0.0), "doge: mu must be > 0"),
        (DoGE, dict(mu=-0.1), "doge: mu must be > 0"),
    ],
)
def test_other_bad_hyperparameters(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(m=3, **COMMON, **kw)
    ok = {k: abs(v) or 0.1 for k, v in kw.items()}  # the same policy with a positive value constructs
    cls(m=3, **COMMON, **ok)


@pytest.mark.parametrize(
    "graph,match",
    [
        (np.zeros((2, 2)), r"skills graph must have shape \(3, 3\) for 3 groups, got \(2, 2\)"),
        (np.zeros((3,)), r"skills graph must have shape \(3, 3\)"),
        (np.zeros((3, 4)), r"skills graph must have shape \(3, 3\)"),
        (np.array([[0.1, np.nan, 0], [0, 0.1, 0], [0, 0, 0.1]]), "NaN or infinite"),
        (np.array([[0.1, 0, 0], [0, np.inf, 0], [0, 0, 0.1]]), "NaN or infinite"),
        (None, "needs its skills graph"),
    ],
)
def test_skillit_prepare_extra_rejects_bad_graphs(graph, match):
    pol = SkillIt(m=3, **COMMON, eta=0.2, update_steps=100)
    with pytest.raises(ValueError, match=match):
        pol.prepare_extra(graph)
    out = pol.prepare_extra(np.eye(3))
    assert out.shape == (3, 3) and out.dtype == np.float32
