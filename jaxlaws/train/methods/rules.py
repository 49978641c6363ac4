"""The update rules now live in :mod:`jaxlaws.mixing.rules`; this name is kept for existing imports."""

from jaxlaws.mixing.rules import *  # noqa: F401,F403
from jaxlaws.mixing.rules import __all__  # noqa: F401
