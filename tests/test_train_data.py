"""Tests for jaxlaws.train.data: corpora, loaders, samplers, exact allocation, eval chunks, synthetic languages.

Statistical tests use fixed keys, so they are deterministic; each threshold is stated as the probability
that a correct implementation would fail it under a fresh random key.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxlaws.train import data as D

SEQ = 16


# ------------------------------------------------------------------------------------------ helpers
def ramp_groups(lengths, vocab_size=60_000) -> D.TokenGroups:
    """Groups whose tokens are consecutive integers, disjoint ranges per group: a token reveals its group
    and its position, so windows can be checked exactly."""
    parts, base = [], 0
    for n in lengths:
        parts.append(np.arange(base, base + n, dtype=np.uint16))
        base += n + 1000
    split = D.concat_splits(parts)
    return D.TokenGroups(tuple(f"g{i}" for i in range(len(lengths))), vocab_size, split, split, split)


def check_windows(groups: D.TokenGroups, x: np.ndarray, ids: np.ndarray, seq_len: int) -> None:
    s = groups.train
    x, ids = np.asarray(x), np.asarray(ids)
    assert x.shape == (ids.size, seq_len + 1) and x.dtype == np.int32 and ids.dtype == np.int32
    first = s.tokens[s.starts[ids]].astype(np.int64)
    last = first + s.lengths[ids] - 1
    np.testing.assert_array_equal(x, x[:, :1] + np.arange(seq_len + 1))  # one contiguous window
    assert np.all(x[:, 0] >= first) and np.all(x[:, -1] <= last)  # inside the sampled group


def empirical_transitions(seq: np.ndarray, V: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.zeros((V, V))
    np.add.at(counts, (seq[:-1].astype(int), seq[1:].astype(int)), 1)
    rows = counts.sum(1, keepdims=True)
    return counts / np.maximum(rows, 1), rows[:, 0] / rows.sum()


@functools.cache
def bundled() -> D.TokenGroups:
    return D.load_groups("bundled", seq_len=128)


# ------------------------------------------------------------------------------------------ bundled corpora
def test_bundled_groups_are_the_shipped_bytes_plus_eos():
    g = bundled()
    assert g.names == ("code", "docs", "literature", "qa") and g.vocab_size == 257 and g.eos_id == 256
    for i, name in enumerate(g.names):
        for split in D.SPLITS:
            raw = (D.BUNDLED_DIR / name / f"{split}.txt").read_bytes()
            toks = g.split(split).group(i)
            np.testing.assert_array_equal(toks[:-1], np.frombuffer(raw, np.uint8))
            assert toks[-1] == D.EOS_ID
        # a few MB in all: about 1 MB per group, the held-out splits ~5 % each
        n = g.train.lengths[i]
        assert 300_000 < n < 1_000_001
        assert 0.04 < g.val.lengths[i] / n < 0.07 and 0.04 < g.test.lengths[i] / n < 0.07
        assert raw.decode("utf-8")  # valid UTF-8


def test_bundled_groups_are_distinct_domains():
    """Byte-unigram statistics tell the groups apart: every val/test split is closer (total variation)
    to its own group's train split than to any other group's, by a margin of at least 0.03; and the
    train splits of different groups differ by more than 0.07."""
    g = bundled()
    freq = lambda s, i: np.bincount(g.split(s).group(i), minlength=257) / g.split(s).lengths[i]
    tv = lambda a, b: 0.5 * np.abs(a - b).sum()
    train = [freq("train", j) for j in range(g.m)]
    for s in ("val", "test"):
        for i in range(g.m):
            d = np.array([tv(freq(s, i), t) for t in train])
            assert np.argmin(d) == i and np.sort(d)[1] - d[i] > 0.03, (s, g.names[i], d)
    for i in range(g.m):
        for j in range(i + 1, g.m):
            assert tv(train[i], train[j]) > 0.07


def test_select_reorders_groups():
    g = bundled().select(["qa", "code"])
    assert g.names == ("qa", "code")
    np.testing.assert_array_equal(g.val.group(1), bundled().val.group(0))
    with pytest.raises(ValueError, match="unknown group 'news'"):
        bundled().select(["news"])
    s = syn(0.5).select(["syn2", "syn0"])
    np.testing.assert_array_equal(s.info["transitions"][0], syn(0.5).info["transitions"][2])
    assert s.info["cross_entropy"][0, 1] == syn(0.5).info["cross_entropy"][2, 0]


# ------------------------------------------------------------------------------------------ sampler
def test_sample_batch_realises_mixture_chi_square():
    g = bundled()
    tok, st, ln = g.train.as_jax()
    p = np.array([0.1, 0.2, 0.3, 0.4])
    f = jax.jit(D.sample_batch, static_argnums=(5, 6))
    x, ids = f(jax.random.key(0), tok, st, ln, jnp.asarray(p), 4096, 8)
    counts = np.bincount(np.asarray(ids), minlength=4)
    # chi-square goodness of fit; a correct sampler fails at this level with probability 1e-3
    assert stats.chisquare(counts, 4096 * p).pvalue > 1e-3
    # windows are real text of the drawn group: each row occurs in that group's train tokens
    x = np.asarray(x)
    for b in range(0, 4096, 512):
        hay = g.train.group(int(ids[b])).tobytes()
        assert x[b].astype(np.uint16).tobytes() in hay


def test_sample_batch_vmaps_over_runs_with_binomial_bounds():
    """K runs vmapped over (key, p); each group's count is Binomial(B, p_j): stay within 4.5 sd
    (two-sided failure probability < 1e-5 per entry)."""
    groups = ramp_groups([200, 300, 250])
    tok, st, ln = groups.train.as_jax()
    P = jnp.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    keys = jax.random.split(jax.random.key(1), P.shape[0])
    B = 2000
    run = jax.jit(jax.vmap(lambda k, p: D.sample_batch(k, tok, st, ln, p, B, SEQ)))
    xs, ids = run(keys, P)
    for r in range(P.shape[0]):
        counts = np.bincount(np.asarray(ids[r]), minlength=3)
        p = np.asarray(P[r], np.float64)
        assert np.all(np.abs(counts - B * p) <= 4.5 * np.sqrt(B * p * (1 - p)))
        assert np.all(counts[p == 0] == 0)  # zero weight is never drawn
        check_windows(groups, xs[r], ids[r], SEQ)


def test_step_stream_is_a_function_of_the_step():
    groups = ramp_groups([100, 100])
    tok, st, ln = groups.train.as_jax()
    run_key, p = jax.random.key(7), jnp.array([0.5, 0.5])
    batch = lambda s: np.asarray(D.sample_batch(jax.random.fold_in(run_key, s), tok, st, ln, p, 8, SEQ)[0])
    np.testing.assert_array_equal(batch(3), batch(3))
    assert not np.array_equal(batch(3), batch(4))


def test_window_start_is_uniform_over_all_valid_positions():
    """A group with L + 10 tokens has exactly 10 valid starts; all must appear, uniformly (chi-square,
    failure probability 1e-3), and no window may run past the group's end (checked by check_windows)."""
    groups = ramp_groups([SEQ + 10, 500])
    tok, st, ln = groups.train.as_jax()
    x, ids = D.sample_batch(jax.random.key(2), tok, st, ln, jnp.array([1.0, 0.0]), 5000, SEQ)
    check_windows(groups, x, ids, SEQ)
    offsets = np.asarray(x[:, 0]) - int(groups.train.tokens[0])
    counts = np.bincount(offsets, minlength=10)
    assert counts.size == 10 and np.all(counts > 0)
    assert stats.chisquare(counts).pvalue > 1e-3


# ------------------------------------------------------------------------------------------ exact allocation
def original_allocation(q, B):
    """The released code's LearnParams allocation (``trainer/aioli_trainer.py``), for contrast."""
    c = [max(1, int(qj * B)) for qj in q[:-1]]
    return c + [B - sum(c)]


@pytest.mark.parametrize("m", range(2, 10))
def test_allocate_exact_sums_and_is_within_one(m):
    rng = np.random.default_rng(m)
    for B in (1, 2, 7, 8, 16, 33, 1000):
        for p in [rng.dirichlet(np.ones(m)) for _ in range(30)] + [np.full(m, 1 / m), np.eye(m)[m - 1]]:
            c = D.allocate_exact(p, B)
            exact = B * p
            assert c.sum() == B and np.all(c >= 0)
            assert np.all(np.abs(c - exact) < 1)
            # largest remainder: those rounded up have fractional parts >= those rounded down
            frac = exact - np.floor(exact)
            up = c > np.floor(exact) + 1e-9
            if up.any() and (~up).any():
                assert frac[up].min() >= frac[~up].max() - 1e-12


def test_allocate_exact_fixes_the_m7_case():
    q = np.array([0.75] + [0.25 / 6] * 6)
    assert original_allocation(q, 8)[-1] == -3  # the original's bug
    c = D.allocate_exact(q, 8)
    np.testing.assert_array_equal(c, [6, 1, 1, 0, 0, 0, 0])  # B q = (6, 1/3 x 6): two ties go to low index
    for target in range(7):  # every target of the m=7 Aioli LearnParams step
        q = np.full(7, 0.25 / 6)
        q[target] = 0.75
        c = D.allocate_exact(q, 8)
        assert c.sum() == 8 and c[target] == 6 and np.all(np.abs(c - 8 * q) < 1)


def test_sample_allocated_batch_realises_counts_exactly():
    groups = ramp_groups([100, 200, 150, 300])
    tok, st, ln = groups.train.as_jax()
    counts = D.allocate_exact([0.1, 0.2, 0.3, 0.4], 13)
    x, ids = D.sample_allocated_batch(jax.random.key(3), tok, st, ln, counts, SEQ)
    np.testing.assert_array_equal(np.bincount(np.asarray(ids), minlength=4), counts)
    check_windows(groups, x, ids, SEQ)
    # traced counts under jit (batch size given statically); the batch is shuffled, not sorted by group
    f = jax.jit(D.sample_allocated_batch, static_argnums=(5, 6))
    orders = []
    for s in range(5):
        x, ids = f(jax.random.key(s), tok, st, ln, jnp.asarray(counts), SEQ, 13)
        np.testing.assert_array_equal(np.bincount(np.asarray(ids), minlength=4), counts)
        check_windows(groups, x, ids, SEQ)
        orders.append(np.all(np.diff(np.asarray(ids)) >= 0))
    assert not all(orders)


# ------------------------------------------------------------------------------------------ eval chunks
def test_eval_chunks_tile_each_split():
    g = bundled()
    L = 128
    x, ids = D.eval_chunks(g, "val", L)
    assert x.dtype == np.int32 and x.shape[1] == L + 1
    assert np.all(np.diff(ids) >= 0)  # grouped, in group order
    for i in range(g.m):
        toks = g.val.group(i).astype(np.int32)
        xi = x[ids == i]
        assert xi.shape[0] == (toks.size - 1) // L
        # targets tile the split from its second token; the dropped tail is shorter than one chunk
        np.testing.assert_array_equal(xi[:, 1:].reshape(-1), toks[1 : 1 + xi.shape[0] * L])
        np.testing.assert_array_equal(xi[:, 0], toks[: xi.shape[0] * L : L])
        assert toks.size - 1 - xi.shape[0] * L < L


def test_eval_chunks_cap_is_evenly_spaced():
    groups = ramp_groups([SEQ * 100 + 1, SEQ * 3 + 5])
    x, ids = D.eval_chunks(groups, "test", SEQ, max_chunks_per_group=4)
    np.testing.assert_array_equal(np.bincount(ids), [4, 3])  # the small group keeps all its 3 chunks
    starts = x[ids == 0, 0] - int(groups.test.tokens[0])
    np.testing.assert_array_equal(starts, np.array([0, 25, 50, 75]) * SEQ)


# ------------------------------------------------------------------------------------------ loaders
def test_bin_round_trip(tmp_path):
    g = D.synthetic_groups(3, 0.3, seed=5, n_tokens=2000, vocab_size=16)
    D.save_bin(g, tmp_path)
    assert (tmp_path / "syn1" / "val.bin").stat().st_size == 2 * g.val.lengths[1]
    back = D.load_groups(tmp_path, seq_len=SEQ)
    assert back.names == g.names and back.vocab_size == 16 and back.info["format"] == "bin"
    for s in D.SPLITS:
        for f in ("tokens", "starts", "lengths"):
            np.testing.assert_array_equal(getattr(back.split(s), f), getattr(g.split(s), f))
    assert D.load_groups(tmp_path, seq_len=SEQ, vocab_size=50304).vocab_size == 50304
    # the on-disk layout is the original's: raw little-endian uint16, readable with np.memmap
    mm = np.memmap(tmp_path / "syn0" / "train.bin", dtype=np.uint16, mode="r")
    np.testing.assert_array_equal(mm, g.train.group(0))


def write_text_groups(root):
    (root / "b").mkdir(parents=True)
    (root / "a" / "sub").mkdir(parents=True)
    docs = {
        "a/x.txt": "".join(f"line {i} of x, café\n" for i in range(200)),
        "a/sub/y.py": "".join(f"def f{i}(): return {i}\n" for i in range(150)),
        "a/ignored.json": "{}",
        "b/z.rst": "".join(f"Title {i}\n=======\n\n" for i in range(300)),
    }
    for rel, text in docs.items():
        (root / rel).write_text(text, encoding="utf-8")
    return docs


def test_text_dir_loader_splits_each_document(tmp_path):
    docs = write_text_groups(tmp_path)
    g = D.load_groups(tmp_path, seq_len=SEQ)
    assert g.names == ("a", "b") and g.vocab_size == 257
    for i, files in enumerate([["a/sub/y.py", "a/x.txt"], ["b/z.rst"]]):  # sorted by path, .json ignored
        for k, s in enumerate(D.SPLITS):
            want = b"".join(D.split_document(docs[f])[k].encode() + b"\x00" for f in files)
            got = g.split(s).group(i)
            eos = got == D.EOS_ID
            assert eos.sum() == len(files)
            np.testing.assert_array_equal(np.where(eos, 0, got), np.frombuffer(want, np.uint8))
    # every piece ends at a line break and the three pieces rebuild the document
    for text in (t for f, t in docs.items() if not f.endswith(".json")):
        parts = D.split_document(text)
        assert "".join(parts) == text and all(p.endswith("\n") for p in parts if p and "\n" in text)
        assert abs(len(parts[0]) / len(text) - 0.9) < 0.05


def test_text_dir_loader_custom_tokenizer_and_order(tmp_path):
    write_text_groups(tmp_path)

    class Chars:
        vocab_size = 300

        def __call__(self, text):
            return [min(ord(c), 298) for c in text]

    g = D.load_groups(tmp_path, names=["b", "a"], tokenizer=Chars(), seq_len=SEQ, eos_id=299)
    assert g.names == ("b", "a") and g.vocab_size == 300 and g.eos_id == 299
    assert g.train.group(1).max() == 299 and 233 in g.train.group(1)  # 'é' is one token, not two bytes
    plain = D.load_groups(tmp_path, names=["a"], tokenizer=lambda t: [ord(c) % 7 for c in t], vocab_size=7, seq_len=SEQ)
    assert plain.eos_id is None and plain.train.tokens.max() < 7


def test_presplit_text_group(tmp_path):
    for s, text in zip(D.SPLITS, ["t" * 100, "v" * 40, "s" * 30]):
        (tmp_path / "only").mkdir(exist_ok=True)
        (tmp_path / "only" / f"{s}.txt").write_text(text)
    g = D.load_groups(tmp_path, seq_len=SEQ)
    np.testing.assert_array_equal(g.val.lengths, [41])  # 40 bytes + EOS
    assert set(g.val.tokens[:-1]) == {ord("v")}


# ------------------------------------------------------------------------------------------ bad input
def test_bad_sources_and_groups(tmp_path):
    with pytest.raises(ValueError, match="not 'bundled' or an existing directory"):
        D.load_groups(tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown group 'news'.*available"):
        D.load_groups("bundled", names=["code", "news"])
    with pytest.raises(ValueError, match="duplicate"):
        D.load_groups("bundled", names=["code", "code"])
    with pytest.raises(ValueError, match="no group directories"):
        D.load_groups(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="group 'empty': no files ending in"):
        D.load_groups(tmp_path)
    (tmp_path / "empty" / "a.txt").write_text("")
    with pytest.raises(ValueError, match="group 'empty': train split has 0 tokens, fewer than the 129 that one window"):
        D.load_groups(tmp_path)


def test_too_small_groups():
    with pytest.raises(ValueError, match="group 'qa': val split has .* that one window needs"):
        D.load_groups("bundled", seq_len=20_000)
    with pytest.raises(ValueError, match="group 'qa': train split .* that one batch needs"):
        D.load_groups("bundled", seq_len=128, batch_size=3000)
    groups = ramp_groups([SEQ, 100])
    with pytest.raises(ValueError, match="group 0 has 16 train tokens, fewer than one window"):
        D.sample_batch(jax.random.key(0), *groups.train.as_jax(), jnp.array([0.5, 0.5]), 4, SEQ)
    with pytest.raises(ValueError, match="group 'g0': val split has 16 tokens, fewer than one chunk"):
        D.eval_chunks(groups, "val", SEQ)


def test_bad_bin_dirs(tmp_path):
    g = D.synthetic_groups(2, 0.5, seed=0, n_tokens=2000, vocab_size=16)
    D.save_bin(g, tmp_path)
    with pytest.raises(ValueError, match="already tokenised"):
        D.load_groups(tmp_path, tokenizer=list, vocab_size=10)
    (tmp_path / "syn1" / "test.bin").write_bytes(b"\x01\x00\x02")
    with pytest.raises(ValueError, match="test.bin: size 3 bytes is not a whole number of uint16"):
        D.load_groups(tmp_path)
    (tmp_path / "syn1" / "test.bin").unlink()
    (tmp_path / "syn1" / "a.txt").write_text("x" * 100)
    with pytest.raises(ValueError, match=r"groups \['syn1'\] lack"):
        D.load_groups(tmp_path)


def test_bad_tokenizers(tmp_path):
    write_text_groups(tmp_path)
    with pytest.raises(ValueError, match="needs vocab_size"):
        D.load_groups(tmp_path, tokenizer=lambda t: [1])
    with pytest.raises(ValueError, match="ids outside"):
        D.load_groups(tmp_path, tokenizer=lambda t: [ord(c) for c in t], vocab_size=50)
    with pytest.raises(ValueError, match="does not fit uint16"):
        D.load_groups(tmp_path, tokenizer=lambda t: [1], vocab_size=70_000)
    with pytest.raises(ValueError, match="byte tokeniser has vocab_size=257"):
        D.load_groups(tmp_path, vocab_size=300)


@pytest.mark.parametrize(
    "p, match",
    [
        ([0.5, 0.5], r"p must have shape \(3,\)"),
        ([0.5, 0.6, -0.1], "not on the probability simplex"),
        ([0.2, 0.2, 0.2], "not on the probability simplex"),
        ([np.nan, 0.5, 0.5], "not on the probability simplex"),
    ],
)
def test_bad_mixtures(p, match):
    groups = ramp_groups([100, 100, 100])
    with pytest.raises(ValueError, match=match):
        D.sample_batch(jax.random.key(0), *groups.train.as_jax(), jnp.asarray(p), 4, SEQ)
    if len(p) == 3:  # allocate_exact takes m from p, so only the simplex violations apply
        with pytest.raises(ValueError, match=match):
            D.allocate_exact(p, 8)


def test_bad_allocations():
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        D.allocate_exact([0.5, 0.5], 0)
    groups = ramp_groups([100, 100])
    args = (jax.random.key(0), *groups.train.as_jax())
    with pytest.raises(ValueError, match="counts sum to 5, not batch_size=6"):
        D.sample_allocated_batch(*args, np.array([2, 3]), SEQ, 6)
    with pytest.raises(ValueError, match="non-negative integers"):
        D.sample_allocated_batch(*args, np.array([-1, 3]), SEQ)
    with pytest.raises(ValueError, match=r"counts must have shape \(2,\)"):
        D.sample_allocated_batch(*args, np.array([1, 1, 1]), SEQ)
    with pytest.raises(ValueError, match="batch_size is required"):
        jax.jit(lambda c: D.sample_allocated_batch(*args, c, SEQ))(jnp.array([1, 1]))
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        D.eval_chunks(groups, "dev", SEQ)


def test_bad_synthetic_arguments():
    with pytest.raises(ValueError, match="overlap must be in"):
        D.synthetic_groups(2, overlap=1.5)
    with pytest.raises(ValueError, match="structure must be"):
        D.synthetic_groups(2, structure="ring")
    with pytest.raises(ValueError, match="m must be a positive int"):
        D.synthetic_groups(0)


# ------------------------------------------------------------------------------------------ synthetic
V = 16
N_SYN = 60_000


@functools.cache
def syn(overlap: float, structure: str = "shared", seed: int = 0, m: int = 3) -> D.TokenGroups:
    return D.synthetic_groups(m, overlap, seed, N_SYN, n_eval_tokens=20_000, vocab_size=V, structure=structure)


def test_synthetic_chains_follow_their_transition_matrices():
    g = syn(0.5)
    T = g.info["transitions"]
    assert T.shape == (3, V, V) and np.allclose(T.sum(-1), 1)
    pi = D.stationary_distribution(T)
    for i in range(3):
        That, freq = empirical_transitions(g.train.group(i), V)
        # row-wise TV weighted by visits; sampling error ~ sqrt(V / visits) / 2 ~ 0.03 at these sizes
        tv = 0.5 * np.abs(That - T[i]).sum(1)
        assert freq @ tv < 0.05
        assert 0.5 * np.abs(freq - pi[i]).sum() < 0.03  # visits match the stationary distribution


def test_synthetic_cross_entropy_matches_held_out_loss():
    """The analytic CE[h, g] equals the average -log T_g over language h's test tokens (sd < 0.01 nats
    here; tolerance 0.05)."""
    g = syn(0.3)
    T, CE = g.info["transitions"], g.info["cross_entropy"]
    for h in range(3):
        seq = g.test.group(h).astype(int)
        for k in range(3):
            assert abs(-np.log(T[k][seq[:-1], seq[1:]]).mean() - CE[h, k]) < 0.05
    off = ~np.eye(3, dtype=bool)
    assert np.all((np.diag(CE)[:, None] < CE)[off])  # its own model is best for every language


def test_overlap_knob_shrinks_differences_linearly():
    """For "shared", T_g - T_h = (1 - eps)(1 - o)(P_g - P_h): the measured (visit-weighted, empirical)
    TV between two languages at overlap o is (1 - o) times that at o = 0, up to sampling noise."""

    def tv(o, a=0, b=1):
        g = syn(o)
        Ta, fa = empirical_transitions(g.train.group(a), V)
        Tb, fb = empirical_transitions(g.train.group(b), V)
        return 0.5 * ((fa + fb) / 2 @ np.abs(Ta - Tb).sum(1))

    base = tv(0.0)
    assert base > 0.5  # independent languages are very different
    for o in (0.25, 0.5, 0.75):
        assert abs(tv(o) / base - (1 - o)) < 0.06
    assert tv(1.0) < 0.06  # identical languages: only sampling noise
    # exact, from the generating matrices
    T0, T1 = syn(0.0).info["transitions"], syn(0.6).info["transitions"]
    np.testing.assert_allclose(T1[0] - T1[1], 0.4 * (T0[0] - T0[1]), atol=1e-12)
    # transfer: the KL rate CE[h, g] - CE[h, h] falls as overlap grows and vanishes at 1
    kl = [syn(o).info["cross_entropy"] - np.diag(syn(o).info["cross_entropy"])[:, None] for o in (0.0, 0.5, 1.0)]
    off = ~np.eye(3, dtype=bool)
    assert np.all(kl[0][off] > kl[1][off]) and np.allclose(kl[2], 0, atol=1e-9)


def test_chain_structure_neighbours_help_each_other():
    """With "chain", bigram models fit on group g's train data lose less on g's neighbours than on
    groups two steps away (checked on data, and in the analytic CE)."""
    g = syn(0.8, "chain", m=4)
    CE = g.info["cross_entropy"]
    models = [np.maximum(empirical_transitions(g.train.group(k), V)[0], 1e-4) for k in range(4)]
    loss = np.array(
        [
            [-np.log(models[k][s[:-1], s[1:]]).mean() for k in range(4)]
            for s in (g.val.group(h).astype(int) for h in range(4))
        ]
    )
    for h in range(4):
        for k in range(4):
            for j in range(4):
                if abs(h - k) == 1 and abs(h - j) >= 2:
                    assert loss[h, k] < loss[h, j] and CE[h, k] < CE[h, j]


def test_synthetic_is_deterministic_in_seed():
    a = D.synthetic_groups(2, 0.5, seed=11, n_tokens=3000, vocab_size=V)
    b = D.synthetic_groups(2, 0.5, seed=11, n_tokens=3000, vocab_size=V)
    c = D.synthetic_groups(2, 0.5, seed=12, n_tokens=3000, vocab_size=V)
    np.testing.assert_array_equal(a.train.tokens, b.train.tokens)
    assert not np.array_equal(a.train.tokens, c.train.tokens)
    assert a.val.lengths.tolist() == [300, 300] and a.names == ("syn0", "syn1")


def test_stationary_distribution_against_power_iteration():
    T = syn(0.5).info["transitions"]
    pi = D.stationary_distribution(T)
    for i in range(3):
        v = np.full(V, 1 / V)
        for _ in range(500):
            v = v @ T[i]
        np.testing.assert_allclose(pi[i], v, atol=1e-10)
