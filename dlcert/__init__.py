"""dlcert: certify critical points of deep linear neural networks.

The flow is data -> statistics -> certificate -> report::

    stats = dlcert.Statistics.from_data(X, Y)
    cert = dlcert.certify(weights, stats)
    print(cert.verdict, cert.gap)

From a notebook, one call takes a model, tensors or files (``dlcert.api``)::

    cert = dlcert.check(model, X, Y)       # nn.Module, state_dict, Flax tree, [W1..WN]
    pol = dlcert.polish(model, X, Y)       # the nearest critical point, certified
"""

__version__ = "0.1.0"  # the one source: pyproject.toml reads it (setuptools dynamic version)

from dlcert.api import (
    Loaded,
    check,
    landscape,
    load,
    passed,
    polish,
    recheck,
    to_dict,
    to_json,
)
from dlcert.certificate import Certificate, ExitCode, Reason, Verdict

# Bound after the submodules load, so the package attribute is the function.
from dlcert.certification import certify
from dlcert.errors import DlcertError, InputError, ResourceError
from dlcert.polishing import Polish
from dlcert.rules import Evidence, decide
from dlcert.statistics import Statistics

__all__ = [
    "Certificate",
    "DlcertError",
    "Evidence",
    "ExitCode",
    "InputError",
    "Loaded",
    "Polish",
    "Reason",
    "ResourceError",
    "Statistics",
    "Verdict",
    "__version__",
    "certify",
    "check",
    "decide",
    "landscape",
    "load",
    "passed",
    "polish",
    "recheck",
    "to_dict",
    "to_json",
]
