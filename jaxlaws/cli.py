"""The ``jaxlaws`` console command. Each family of subcommands lives beside the code it drives and is
registered here; imports are lazy so ``jaxlaws --help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["build_parser", "main"]

# (module, attribute) pairs; each ``register(subparsers)`` adds its subcommands.
_FAMILIES = (
    ("jaxlaws.demo", "register"),  # `jaxlaws demo`: the main job on the bundled example sweeps
    ("jaxlaws.analysis.cli", "register"),  # `jaxlaws analyse ...`
    ("jaxlaws.train.cli", "register"),  # `jaxlaws sweep static|dynamic|method ...`
    ("jaxlaws.train.methods.cli", "register_compare"),  # `jaxlaws compare ...`
    ("jaxlaws.report.cli", "register"),  # `jaxlaws report DIR --out OUT` (needs the plot extra)
)


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxlaws`` command's parser, with every command family that imports (``_FAMILIES``)."""
    parser = argparse.ArgumentParser(prog="jaxlaws", description="Data-mixing laws in JAX.", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, attr in _FAMILIES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:  # a family not built yet must not break the others
            if e.name and e.name.startswith("jaxlaws"):
                continue
            raise
        getattr(mod, attr)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``jaxlaws`` command with ``argv`` (default ``sys.argv[1:]``).

    Args:
      argv: the arguments after the program name.

    Returns:
      The exit status: 0 on success, 2 for a user error (bad arguments, inputs or data: one line, the traceback
      with ``--debug``).
    """
    parser = build_parser()
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        # user errors (bad arguments, inputs, data) are one line with exit code 2; --debug shows where
        if args.debug:
            raise
        print(f"jaxlaws: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
