"""jaxlaws' trainer through ``jaxlaws.mixing`` vs the code before it, and tokens/s next to a hand-written loop.

Two parts, one run:

1. **Per-step cost, new vs old.** ``benchmarks/bench_methods.py`` of an old checkout (``--old``, made with
   ``git worktree add /tmp/old <commit>``; it runs with ``PYTHONPATH`` set to that checkout) and of this tree
   are run alternately (interleaved rounds, ``--rounds`` each, the order swapped every round, so both share the
   machine's load); each loop (the static sweeps' loop and each method) reports the median ms per run-step over
   the rounds and the median of the per-round ratios new / old.
2. **Tokens per second of one run** of the same model size: (a) jaxlaws' trainer program (the sweeps'
   compiled, vmapped program, constant mixer, one run), (b) a minimal hand-written flax/optax loop (jaxlaws'
   decoder and optimiser, ``jax.lax.scan`` over ``data.sample_batch``), (c) a PyTorch GPT-NeoX-like model of
   the same size (parallel residual, rotary on 25 % of each head, GELU MLP, untied head; AdamW with
   global-norm clip 1.0; random tokens; the original stack's architecture, ``torch`` CPU build). Each round
   times every loop (best of ``--repeats`` x ``--steps`` steps after a warm-up) in a rotating order; the
   median over ``--rounds`` rounds is reported.

With ``--in-process`` part 1 instead imports both checkouts into one process (``jaxlaws`` from the old one,
its programs compiled and warmed up, its modules dropped, then this tree's) and calls the two programs of each
loop alternately, ``--pairs`` pairs of ``--steps`` steps: both see the same moment's load, and besides the wall
time it reports the CPU time per step (``time.process_time``), which another job on the machine disturbs far
less. ``--per-step-only`` skips part 2.

With ``--same-as DIR`` (a checkout from commit 11b737f on, where every run trains through
``methods.base.make_policy_run``) it instead lowers the training program of the static sweeps and of each
method in both trees and prints whether their StableHLO is identical: a load-independent check that a change to
the host-side loop left the compiled per-step work as it was.

    python benchmarks/bench_mixing.py --old /tmp/old --steps 30 --rounds 5
    python benchmarks/bench_mixing.py --old /tmp/old --in-process --pairs 10 --steps 20
    python benchmarks/bench_mixing.py --same-as /tmp/pre
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def methods_table(root: Path, args: argparse.Namespace) -> dict[str, float]:
    """``{loop: ms per run-step}`` from ``bench_methods.py`` of the checkout ``root``."""
    cmd = [
        sys.executable,
        str(root / "benchmarks" / "bench_methods.py"),
        "--steps",
        str(args.steps),
        "--repeats",
        str(args.repeats),
        "--groups",
        args.groups,
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\| ([^|]+?) \| ([0-9.]+) \|", line)
        if m:
            rows[m.group(1)] = float(m.group(2))
    return rows


def part_one(args: argparse.Namespace) -> str:
    old, new = Path(args.old).resolve(), ROOT
    got: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    loads = []
    for r in range(args.rounds):  # interleaved: old and new share each round's load
        order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
        for label, root in order:
            loads.append(os.getloadavg()[0])
            for k, v in methods_table(root, args).items():
                key = "static sweeps' program" if k.startswith("static loop") else k
                got[label].setdefault(key, []).append(v)
            print(f"round {r + 1}, {label}: { ({k: v[-1] for k, v in got[label].items()}) }", flush=True)
    commit = subprocess.run(
        ["git", "-C", str(old), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"Per-step cost (ms per run-step; {args.rounds} interleaved rounds of bench_methods.py per checkout, each "
        f"best of {args.repeats} x {args.steps} steps; old = commit {commit}); load average "
        f"{min(loads):.2f}-{max(loads):.2f} while it ran.",
        "",
        "| loop | old (median) | new (median) | new / old (median of rounds) | new / old per round |",
        "|---|---|---|---|---|",
    ]
    for k, o in got["old"].items():
        if k in got["new"]:
            n = got["new"][k]
            ratios = [b / a for a, b in zip(o, n)]
            lines.append(
                f"| {k} | {np.median(o):.2f} | {np.median(n):.2f} | {np.median(ratios):.3f} | "
                + ", ".join(f"{x:.2f}" for x in ratios)
                + " |"
            )
    return "\n".join(lines)


def tree_loops(args: argparse.Namespace) -> dict[str, tuple[Callable, tuple]]:
    """``{loop: (jitted training program, its arguments for one run)}`` of the checkout that ``import jaxlaws``
    finds: the static sweeps' program and each method's. Works for this tree and for checkouts from a9cdbe9 on
    (before ``jaxlaws.train.loop`` the programs come from ``jaxlaws.train.sweep._programs``)."""
    import inspect

    import jax
    import jax.numpy as jnp

    from jaxlaws.train import data as D
    from jaxlaws.train.methods.base import MethodData, make_policy_run
    from jaxlaws.train.methods.sweep import make_policy
    from jaxlaws.train.model import preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.step import run_keys
    from jaxlaws.train.sweep import TrainConfig, prepare_data

    try:
        from jaxlaws.train.loop import Loop

        def programs(cfg, m, sampler, policy):
            return Loop(cfg, m, policy, sampler).programs
    except ImportError:  # before jaxlaws.train.loop
        from jaxlaws.train.sweep import _programs

        def programs(cfg, m, sampler, policy):
            return _programs(cfg, m, sampler, None, policy)

    groups = D.load_groups("bundled", names=args.groups.split(","), seq_len=args.seq_len, batch_size=args.batch_size)
    model = preset(args.preset, vocab_size=groups.vocab_size, context=args.seq_len)
    cfg = TrainConfig(model, OptimConfig(total_steps=1000, warmup_steps=100, lr=2e-3), args.batch_size, args.seq_len)
    data = prepare_data(groups, cfg, 8)
    m = len(data.names)
    keys, dk = jnp.stack([run_keys(0)[0]]), jnp.stack([run_keys(0)[1]])
    progs = programs(cfg, m, D.sample_batch, None)
    # before the static sweeps trained through make_policy_run (its `sampler`), their program took the split
    static_data = MethodData(data.train) if "sampler" in inspect.signature(make_policy_run).parameters else data.train
    out = {"static sweeps' program": (progs.train, (progs.init(keys), jnp.full((1, m), 1.0 / m), dk, static_data))}
    extras = {"skillit": np.full((m, m), 0.1) + 0.3 * np.eye(m), "doremi": progs.init(keys).params}
    for method in ("stratified", "skillit", "doremi", "doge", "aioli"):
        pol = make_policy(method, m, cfg)
        progs = programs(cfg, m, None, pol)
        ex = extras.get(method)
        ex = None if ex is None else (pol.prepare_extra(ex)[None] if method == "skillit" else ex)
        ps = progs.policy_init(jax.random.split(jax.random.key(0), 1), ex)
        mdata = MethodData(data.train, data.val_windows, data.probe)
        out[method] = (progs.train, (progs.init(keys), ps, dk, mdata))
    return out


def fingerprints(args: argparse.Namespace) -> dict[str, str]:
    """``{loop: sha256 of the lowered (StableHLO) training program}`` of the checkout on ``PYTHONPATH``: the
    static sweeps' program and each method's, for one run (``--fingerprints``; run by :func:`same_programs`)."""
    import hashlib

    import jax.numpy as jnp

    return {
        k: hashlib.sha256(fn.lower(*a, jnp.int32(1)).as_text().encode()).hexdigest()[:16]
        for k, (fn, a) in tree_loops(args).items()
    }


def _import_tree(root: Path, args: argparse.Namespace) -> dict[str, Callable[[], tuple[float, float]]]:
    """Import the checkout ``root`` as ``jaxlaws``, compile and warm up each loop's program (one run), then
    drop its modules from ``sys.modules`` so that the next checkout can be imported in the same process; the
    compiled programs keep working (calls with the same shapes do not trace again). Each returned ``time()``
    trains ``--steps`` more steps and gives ``(wall, CPU)`` seconds per step."""
    import jax
    import jax.numpy as jnp

    def purge() -> None:
        for name in [k for k in sys.modules if k == "jaxlaws" or k.startswith("jaxlaws.")]:
            del sys.modules[name]

    n = jnp.int32(args.steps)
    timers = {}
    purge()
    sys.path.insert(0, str(root))
    try:  # traced and compiled while the checkout's modules are the ones imported (imports inside functions)
        import jaxlaws

        if Path(jaxlaws.__file__).resolve().parents[1] != root:
            raise RuntimeError(f"import jaxlaws found {jaxlaws.__file__}, not the checkout {root}")
        for name, (fn, (state, pstate, dk, data)) in tree_loops(args).items():
            box = {"st": state, "ps": pstate}

            def time_it(fn=fn, box=box, dk=dk, data=data) -> tuple[float, float]:
                w, c = time.perf_counter(), time.process_time()
                box["st"], box["ps"] = fn(box["st"], box["ps"], dk, data, n)
                jax.block_until_ready(box["st"].params)
                return (time.perf_counter() - w) / args.steps, (time.process_time() - c) / args.steps

            time_it()  # compile + warm up
            timers[name] = time_it
    finally:
        sys.path.remove(str(root))
        purge()
    return timers


def part_one_in_process(args: argparse.Namespace) -> str:
    """Per-step cost, old vs new, in one process: both checkouts' programs compiled side by side and called
    alternately (``--pairs`` pairs of calls per loop, the order swapped every pair), wall and CPU time."""
    old = _import_tree(Path(args.old).resolve(), args)
    new = _import_tree(ROOT, args)
    commit = subprocess.run(
        ["git", "-C", args.old, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    loads = [os.getloadavg()[0]]
    lines = []
    for k in old:
        if k not in new or (args.loops and k not in args.loops.split(",")):
            continue
        got: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
        for r in range(args.pairs):
            for label in ("old", "new") if r % 2 == 0 else ("new", "old"):
                got[label].append((old if label == "old" else new)[k]())
        loads.append(os.getloadavg()[0])
        o, n = np.asarray(got["old"]) * 1e3, np.asarray(got["new"]) * 1e3
        lines.append(
            f"| {k} | {np.median(o[:, 0]):.2f} | {np.median(n[:, 0]):.2f} | {np.median(n[:, 0] / o[:, 0]):.3f} | "
            f"{n[:, 0].min() / o[:, 0].min():.3f} | {np.median(o[:, 1]):.2f} | {np.median(n[:, 1]):.2f} | "
            f"{np.median(n[:, 1] / o[:, 1]):.3f} |"
        )
        print(lines[-1], flush=True)
    head = [
        f"Per-step cost in one process (ms per run-step; the programs of commit {commit} (old) and of this tree "
        f"(new) compiled side by side, {args.pairs} alternating pairs of calls of {args.steps} steps per loop; "
        f"probe evaluations not included); load average {min(loads):.2f}-{max(loads):.2f} while it ran.",
        "",
        "| loop | wall old (median) | wall new (median) | wall new / old (median of pairs) | wall new / old "
        "(best / best) | CPU old (median) | CPU new (median) | CPU new / old (median of pairs) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + lines)


def same_programs(args: argparse.Namespace) -> str:
    """Whether the checkout ``--same-as`` lowers the same training programs as this tree (load-independent)."""
    import json

    got = {}
    for label, root in (("old", Path(args.same_as).resolve()), ("new", ROOT)):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--fingerprints", "--groups", args.groups]
        cmd += ["--preset", args.preset, "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
        env = {**os.environ, "PYTHONPATH": str(root)}
        out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=True).stdout
        got[label] = json.loads(out.strip().splitlines()[-1])
    commit = subprocess.run(
        ["git", "-C", args.same_as, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"Lowered training programs (StableHLO, SHA-256 prefix), commit {commit} vs this tree:",
        "",
        "| loop | old | new | identical |",
        "|---|---|---|---|",
    ]
    lines += [f"| {k} | {v} | {got['new'].get(k)} | {v == got['new'].get(k)} |" for k, v in got["old"].items()]
    return "\n".join(lines)


def jax_rates(args: argparse.Namespace) -> tuple[dict[str, Callable[[], float]], object]:
    """``{loop: rate()}`` (each call: tokens/s, best of ``--repeats``; the first call compiles) and the model."""
    import jax
    import jax.numpy as jnp

    from jaxlaws.train import data as D
    from jaxlaws.train.loop import Loop, Runs
    from jaxlaws.train.model import per_sample_loss, preset
    from jaxlaws.train.optim import OptimConfig, make_optimizer
    from jaxlaws.train.step import init_state, run_keys
    from jaxlaws.train.sweep import TrainConfig, prepare_data

    groups = D.load_groups("bundled", names=args.groups.split(","), seq_len=args.seq_len, batch_size=args.batch_size)
    model = preset(args.preset, vocab_size=groups.vocab_size, context=args.seq_len)
    cfg = TrainConfig(model, OptimConfig(total_steps=1000, warmup_steps=100, lr=2e-3), args.batch_size, args.seq_len)
    data = prepare_data(groups, cfg, 8)
    m, n, tokens = len(data.names), args.steps, args.steps * args.batch_size * args.seq_len

    def best(fn) -> Callable[[], float]:
        jax.block_until_ready(fn())  # compile / warm up
        return lambda: _best_rate(lambda: jax.block_until_ready(fn()), args.repeats, tokens)

    runs = Runs(Loop(cfg, m, sampler=D.sample_batch), data, [0], policy_states=[np.full(m, 1 / m, np.float32)])

    def trainer():
        runs.advance(n)
        return runs.states[0].params

    opt = make_optimizer(cfg.optim)
    p = jnp.full((m,), 1.0 / m)

    @jax.jit
    def hand(state, key):
        def step(st, s):
            x, _ = D.sample_batch(
                jax.random.fold_in(key, s),
                data.train.tokens,
                data.train.starts,
                data.train.lengths,
                p,
                args.batch_size,
                args.seq_len,
            )
            loss, g = jax.value_and_grad(lambda q: per_sample_loss(q, model, x).mean())(st.params)
            upd, o = opt.update(g, st.opt_state, st.params)
            return st._replace(
                params=jax.tree_util.tree_map(jnp.add, st.params, upd), opt_state=o, step=st.step + 1
            ), loss

        return jax.lax.scan(step, state, jnp.arange(n))[0]

    hbox = {"st": init_state(model, opt, run_keys(0)[0])}

    def hand_loop():
        hbox["st"] = hand(hbox["st"], run_keys(0)[1])
        return hbox["st"].params

    return {
        "jaxlaws trainer (the one loop, constant mixer)": best(trainer),
        "hand-written flax/optax loop (same decoder)": best(hand_loop),
    }, model


def _best_rate(fn: Callable[[], object], repeats: int, tokens: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return tokens / min(times)


def torch_rate(args: argparse.Namespace, mc) -> tuple[Callable[[], float], int]:
    """``(rate(), parameters)`` of the PyTorch GPT-NeoX-like model (warmed up here)."""
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F

    torch.manual_seed(0)
    hd, rot = mc.d_model // mc.n_heads, int(mc.d_model // mc.n_heads * mc.rotary_pct)
    inv = 1.0 / (mc.rotary_base ** (torch.arange(0, rot, 2).float() / rot))
    ang = torch.arange(args.seq_len).float()[:, None] * inv[None]
    cos, sin = torch.cat([ang.cos()] * 2, -1)[None, None], torch.cat([ang.sin()] * 2, -1)[None, None]

    def rotary(x):  # [B, H, T, hd], GPT-NeoX rotate-half on the first `rot` dims
        r, rest = x[..., :rot], x[..., rot:]
        half = torch.cat([-r[..., rot // 2 :], r[..., : rot // 2]], -1)
        return torch.cat([r * cos + half * sin, rest], -1)

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = tnn.LayerNorm(mc.d_model), tnn.LayerNorm(mc.d_model)
            self.qkv, self.out = tnn.Linear(mc.d_model, 3 * mc.d_model), tnn.Linear(mc.d_model, mc.d_model)
            self.fc1, self.fc2 = tnn.Linear(mc.d_model, mc.d_ff), tnn.Linear(mc.d_ff, mc.d_model)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, mc.n_heads, hd).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(rotary(q), rotary(k), v, is_causal=True)
            a = self.out(a.transpose(1, 2).reshape(B, T, mc.d_model))
            return x + a + self.fc2(F.gelu(self.fc1(self.ln2(x))))  # parallel residual

    class NeoX(tnn.Module):
        def __init__(self):
            super().__init__()
            self.emb = tnn.Embedding(mc.vocab_size, mc.d_model)
            self.blocks = tnn.ModuleList([Block() for _ in range(mc.n_layers)])
            self.ln, self.head = tnn.LayerNorm(mc.d_model), tnn.Linear(mc.d_model, mc.vocab_size, bias=False)

        def forward(self, x):
            h = self.emb(x)
            for b in self.blocks:
                h = b(h)
            return self.head(self.ln(h))

    model = NeoX()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    batches = torch.randint(0, mc.vocab_size, (args.steps, args.batch_size, args.seq_len + 1))

    def run():
        for x in batches:
            logits = model(x[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, mc.vocab_size), x[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            tnn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

    run()
    n = sum(p.numel() for p in model.parameters())
    return lambda: _best_rate(run, args.repeats, args.steps * args.batch_size * args.seq_len), n


def part_two(args: argparse.Namespace) -> str:
    import torch

    rates, mc = jax_rates(args)
    t_rate, n_torch = torch_rate(args, mc)
    rates[
        f"PyTorch GPT-NeoX-like, same size ({n_torch / 1e6:.2f}M parameters, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads)"
    ] = t_rate
    got: dict[str, list[float]] = {k: [] for k in rates}
    loads = []
    for r in range(args.rounds):  # interleaved, in a rotating order, so the loops share each round's load
        names = list(rates)
        names = names[r % len(names) :] + names[: r % len(names)]
        loads.append(os.getloadavg()[0])
        for k in names:
            got[k].append(rates[k]())
        print(f"tokens/s round {r + 1}: { ({k: round(v[-1]) for k, v in got.items()}) }", flush=True)
    med = {k: float(np.median(v)) for k, v in got.items()}
    base = med["hand-written flax/optax loop (same decoder)"]
    lines = [
        f"Tokens per second, one run: preset {args.preset}, batch {args.batch_size} x {args.seq_len}; median over "
        f"{args.rounds} interleaved rounds, each best of {args.repeats} x {args.steps} steps; load average "
        f"{min(loads):.2f}-{max(loads):.2f}.",
        "",
        "| loop | tokens/s (median) | vs hand-written flax/optax | rounds |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {v:,.0f} | {v / base:.2f}x | " + ", ".join(f"{x:,.0f}" for x in got[k]) + " |" for k, v in med.items()
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--old", default=None, help="an old checkout (git worktree) to compare with; part 1 is skipped without it"
    )
    ap.add_argument("--groups", default="code,literature")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=10, help="alternating old/new calls per loop (--in-process)")
    ap.add_argument("--loops", default=None, help="only these loops, comma-separated (--in-process)")
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="part 1 in one process (both checkouts' programs side by side, wall and CPU time), not per checkout",
    )
    ap.add_argument("--out", default=None, help="append the tables to this file")
    ap.add_argument("--per-step-only", action="store_true", help="part 1 only (no tokens/s)")
    ap.add_argument("--same-as", default=None, help="a checkout whose lowered training programs to compare; only that")
    ap.add_argument("--fingerprints", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fingerprints:
        import json

        print(json.dumps(fingerprints(args)))
        return
    if args.same_as:
        print(same_programs(args))
        return
    head = f"Machine: {platform.machine()} CPU ({os.cpu_count()} cores), Python {platform.python_version()}."
    parts = [head]
    if not args.per_step_only:
        parts.append(part_two(args))
        print(parts[1], flush=True)
    if args.old:
        parts.append(part_one_in_process(args) if args.in_process else part_one(args))
    print("\n\n".join(parts))
    if args.out:  # appended for RESULTS.md
        with Path(args.out).open("a") as f:
            f.writelines(part + "\n\n" for part in parts)


if __name__ == "__main__":
    main()
