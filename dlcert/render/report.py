"""``dlcert check``'s single-point output with the API's additions: MSE and ``--polish``.

:class:`CheckReport` wraps a certificate (and, with ``--polish``, the polish of its point). Its
text is the certificate's report, one line with the loss in MSE units (conversion stated), and
the polish panel; its dict is the ``dlcert.check/1`` contract plus ``mse``, ``mse_conversion``
and, with ``--polish``, a ``polish`` object (:meth:`dlcert.polishing.Polish.to_dict`). The
stored point's verdict and exit code are unchanged by polishing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.text import Text

from dlcert.certificate import Certificate
from dlcert.polishing import Polish


@dataclass(frozen=True)
class CheckReport:
    """A certificate, optionally with the polish of its point (module doc)."""

    certificate: Certificate
    polish: Polish | None = None
    exit_note: tuple[int, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        from dlcert.api import to_dict

        out = to_dict(self.certificate)
        if self.polish is not None:
            out["polish"] = self.polish.to_dict()
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        from dlcert.render.check_text import CheckView
        from dlcert.render.notebook import loss_line, polish_rich

        yield CheckView(self.certificate, exit_note=self.exit_note)
        yield Text(loss_line(self.certificate), style="muted")
        if self.polish is not None:
            yield polish_rich(self.polish)
