"""JUnit XML of a batch (``--junit-xml FILE``), for CI systems that show test reports.

One ``<testsuite name="dlcert check">`` inside ``<testsuites>``; one ``<testcase>`` per check,
named by its weights file (an entry of a manifest's ``checks:`` list: ``run1/model.npz
(gate.yaml checks[1])``; the data file is in the details)::

    <testsuites name="dlcert" tests="3" failures="1" errors="1" skipped="0" time="0.4">
      <testsuite name="dlcert check" tests="3" failures="1" errors="1" skipped="0" time="0.4"
                 timestamp="2024-01-01T00:00:00" hostname="ci">
        <properties><property name="require" value="global"/> ...</properties>
        <testcase name="a.npz" classname="dlcert.check" time="0.1"/>
        <testcase name="b.npz" classname="dlcert.check" time="0.2">
          <failure message="strict_saddle: ..." type="strict_saddle">details</failure>
        </testcase>
        <testcase name="c.npz" classname="dlcert.check" time="0.0">
          <error message="c.npz: ..." type="input_error">c.npz: ...</error>
        </testcase>
      </testsuite>
    </testsuites>

A check that does not meet ``--require`` is a ``<failure>`` (type = the verdict); an input,
resource or internal error is an ``<error>`` (type = the error kind). Text is stripped of the
characters XML 1.0 cannot hold (control characters, lone surrogates from undecodable file
names), so the file always parses.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from dlcert.batch import BatchResult, CheckOutcome
from dlcert.writer import write_text

SUITE_NAME = "dlcert check"
CLASSNAME = "dlcert.check"

_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: object) -> str:
    """``text`` with every character XML 1.0 forbids replaced by a visible ``\\xNN`` escape."""
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def reason_text(reason: object) -> str:
    """One reason as text: a plain string, or ``code: message`` for a reason object (an object
    or mapping with ``code`` and ``message``, the shape ``reasons`` items are moving to)."""
    if isinstance(reason, dict) and "message" in reason:
        return f"{reason.get('code', '')}: {reason['message']}".lstrip(": ")
    code, message = getattr(reason, "code", None), getattr(reason, "message", None)
    if isinstance(message, str):
        return f"{code}: {message}" if code else message
    return str(reason)


def _details(outcome: CheckOutcome) -> str:
    c = outcome.certificate
    if c is None:
        return ""
    lines = [
        c.message,
        f"verdict: {c.verdict.value} (exit {int(c.exit_code)}); required: {outcome.requirement.value}",
        f"relative gap: {c.relative_gap:.3e} (ftol {c.tolerances.ftol:.1e})",
        f"relative gradient norm: {c.relative_gradient_norm:.3e} (gtol {c.tolerances.gtol:.1e})",
        f"widths: {c.widths}; product rank {c.product_rank}; k = {c.k}",
        f"data: {outcome.data}",
    ]
    lines += [f"reason: {reason_text(r)}" for r in c.reasons]
    return "\n".join(lines)


def _testcase(parent: ET.Element, outcome: CheckOutcome) -> None:
    case = ET.SubElement(parent, "testcase", {
        "name": xml_text(outcome.file),
        "classname": CLASSNAME,
        "time": f"{outcome.seconds:.3f}",
    })
    if outcome.error is not None:
        err = ET.SubElement(case, "error", {
            "message": xml_text(outcome.error.message),
            "type": outcome.error.kind,
        })
        err.text = xml_text(outcome.error.message)
    elif outcome.certificate is not None and not outcome.passed:
        c = outcome.certificate
        fail = ET.SubElement(case, "failure", {
            "message": xml_text(f"{c.verdict.value}: {c.message}"),
            "type": c.verdict.value,
        })
        fail.text = xml_text(_details(outcome))
    elif outcome.certificate is not None:
        out = ET.SubElement(case, "system-out")
        out.text = xml_text(_details(outcome))


def junit_xml(batch: BatchResult, *, timestamp: datetime | None = None) -> str:
    """The JUnit XML document of ``batch`` (UTF-8, with declaration)."""
    counts = batch.counts
    total_time = f"{sum(c.seconds for c in batch.checks):.3f}"
    common = {
        "tests": str(counts["checks"]),
        "failures": str(counts["failed"]),
        "errors": str(counts["errors"]),
        "skipped": "0",
        "time": total_time,
    }
    root = ET.Element("testsuites", {"name": "dlcert", **common})
    when = (timestamp or datetime.now(UTC)).replace(microsecond=0, tzinfo=None)
    suite = ET.SubElement(root, "testsuite", {
        "name": SUITE_NAME,
        **common,
        "timestamp": when.isoformat(),
        "hostname": xml_text(socket.gethostname() or "localhost"),
    })
    props = ET.SubElement(suite, "properties")
    for key, value in (("require", batch.requirement.value), ("exit_code", str(int(batch.exit_code)))):
        ET.SubElement(props, "property", {"name": key, "value": value})
    for outcome in batch.checks:
        _testcase(suite, outcome)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def write_junit(path: Path, batch: BatchResult, *, inputs: Sequence[Path | str | None] = ()) -> None:
    """Write :func:`junit_xml` to ``path`` through :func:`dlcert.writer.write_text` (atomic,
    never over an input or a non-regular file); failures are :class:`InputError`."""
    write_text(Path(path), junit_xml(batch), inputs=inputs, what="the JUnit report")
