"""The error hierarchy. The CLI catches only :class:`DlcertError`.

Anything a user can cause (a bad file, a bad option) is an :class:`InputError` and becomes one
line on stderr with exit code 2. Everything else that escapes is a bug (exit 1).
"""

from __future__ import annotations


class DlcertError(Exception):
    """Base class of every error dlcert raises on purpose."""


class InputError(DlcertError, ValueError):
    """Bad input: unreadable file, missing array, wrong shape, non-finite values, bad option."""


class ResourceError(DlcertError):
    """The problem would need more memory or time than dlcert is allowed to use."""


class ClusterError(DlcertError):
    """The compute cluster failed: a scheduler that cannot be reached, a worker that died."""
