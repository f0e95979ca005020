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

import sys
import types
from typing import TYPE_CHECKING, Any

# Names are bound on first use (PEP 562), so ``import dlcert.cli`` and ``dlcert --help`` do not
# pay for the whole library (issue 14: the import budget is 0.3 s).
_LAZY = {
    "Loaded": "dlcert.api", "check": "dlcert.api", "landscape": "dlcert.api", "load": "dlcert.api",
    "passed": "dlcert.api", "polish": "dlcert.api", "recheck": "dlcert.api", "to_dict": "dlcert.api",
    "to_json": "dlcert.api",
    "Certificate": "dlcert.certificate", "ExitCode": "dlcert.certificate", "Reason": "dlcert.certificate",
    "Verdict": "dlcert.certificate",
    "certify": "dlcert.certification",
    "DlcertError": "dlcert.errors", "InputError": "dlcert.errors", "ResourceError": "dlcert.errors",
    "Polish": "dlcert.polishing",
    "Evidence": "dlcert.rules", "decide": "dlcert.rules",
    "Statistics": "dlcert.statistics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dlcert' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """``dlcert.landscape`` and ``dlcert.recheck`` name both a submodule and an API function; the
    function keeps the package attribute when the submodule is imported (as with eager imports)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("landscape", "recheck") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:
    from dlcert.api import Loaded, check, landscape, load, passed, polish, recheck, to_dict, to_json
    from dlcert.certificate import Certificate, ExitCode, Reason, Verdict
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
