"""dlcert: certify critical points of deep linear neural networks.

The flow is data -> statistics -> certificate -> report::

    stats = dlcert.Statistics.from_data(X, Y)
    cert = dlcert.certify(weights, stats)
    print(cert.verdict, cert.gap)
"""

from dlcert.certificate import Certificate, ExitCode, Reason, Verdict
from dlcert.certification import certify
from dlcert.errors import DlcertError, InputError, ResourceError
from dlcert.rules import Evidence, decide
from dlcert.statistics import Statistics

__all__ = [
    "Certificate",
    "DlcertError",
    "Evidence",
    "ExitCode",
    "InputError",
    "Reason",
    "ResourceError",
    "Statistics",
    "Verdict",
    "certify",
    "decide",
]
__version__ = "0.1.0"
