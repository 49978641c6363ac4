"""Simulated kills for the resume tests: patch the trainer's module-level hooks (the public signatures carry
no test arguments)."""

from jaxlaws.train import loop as L
from jaxlaws.train import sweep as S


def kill_at_step(monkeypatch, step: int) -> None:
    """Raise once the one loop has passed ``step`` (after that boundary's checkpoint is saved)."""

    def hook(s: int) -> None:
        if s >= step:
            raise RuntimeError(f"test hook: stopping at step {s}")

    monkeypatch.setattr(L, "_crash_point", hook)


def kill_after_runs(monkeypatch, n: int) -> None:
    """Raise once a sweep has written ``n`` finished run files."""

    def hook(written: int) -> None:
        if written >= n:
            raise RuntimeError(f"test hook: stopping after {written} runs")

    monkeypatch.setattr(S, "_run_saved", hook)
