"""The online data-mixing methods of :mod:`jaxlaws.mixing` as policies of jaxlaws' training loop.

* :mod:`~jaxlaws.train.methods.base` -- the policy interface, :class:`Constant` (static / stratified), the
  compiled step loop of every run (``make_policy_run``, driven by :mod:`jaxlaws.train.loop`);
* :class:`Aioli`, :class:`SkillIt`, :class:`DoReMi`, :class:`DoGE` -- the methods, each a frozen dataclass of
  its hyper-parameters over its mixer (``None``: the original's values for m = 2, 3, 7);
* :mod:`~jaxlaws.train.methods.run` -- resumable, vmapped training of a policy's runs, with a break step;
* :mod:`~jaxlaws.train.methods.sweep` -- ``method_sweep``: a method end to end (its stages, its final
  static run, its break-step children) into a sweep directory that ``jaxlaws analyse`` reads;
* :mod:`~jaxlaws.train.methods.compare` -- the comparison experiment (``jaxlaws compare``).
"""

from jaxlaws.train.methods.aioli import Aioli
from jaxlaws.train.methods.base import Constant, MethodData, Policy, StepContext
from jaxlaws.train.methods.doge import DoGE
from jaxlaws.train.methods.doremi import DoReMi
from jaxlaws.train.methods.skillit import SkillIt, load_graph, skills_graph

__all__ = [
    "Aioli",
    "Constant",
    "DoGE",
    "DoReMi",
    "MethodData",
    "Policy",
    "SkillIt",
    "StepContext",
    "load_graph",
    "skills_graph",
]
