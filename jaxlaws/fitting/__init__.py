"""The fitting engine: objectives, solvers, the multi-start search and the closed-form linear path."""

from jaxlaws.fitting.bootstrap import BootstrapResult, bootstrap
from jaxlaws.fitting.cv import CVResult, cross_validate, fold_ids
from jaxlaws.fitting.engine import fit, fit_batched
from jaxlaws.fitting.fixed import Fixing, fix
from jaxlaws.fitting.frame import FrameFit, fit_frame
from jaxlaws.fitting.linear import LinearFit, lstsq
from jaxlaws.fitting.metrics import mse, r2
from jaxlaws.fitting.objectives import Objective, huber, squared
from jaxlaws.fitting.regularise import Penalty, ridge
from jaxlaws.fitting.result import FitError, FitResult
from jaxlaws.fitting.solve import RESULTS, Screen, Solution, solve
from jaxlaws.fitting.solvers import LBFGS, Adam, LevenbergMarquardt
from jaxlaws.fitting.two_stage import choose_c, fit_static_two_stage
from jaxlaws.fitting.validate import FitInputError

# jaxlaws.covariance (the function) is re-exported at the top level only: here the name is the module's
__all__ = [
    "BootstrapResult",
    "bootstrap",
    "CVResult",
    "cross_validate",
    "fold_ids",
    "Screen",
    "fit",
    "fit_batched",
    "Fixing",
    "fix",
    "FrameFit",
    "fit_frame",
    "LinearFit",
    "lstsq",
    "mse",
    "r2",
    "Objective",
    "huber",
    "squared",
    "Penalty",
    "ridge",
    "FitError",
    "FitResult",
    "RESULTS",
    "Solution",
    "solve",
    "LBFGS",
    "Adam",
    "LevenbergMarquardt",
    "choose_c",
    "fit_static_two_stage",
    "FitInputError",
]
