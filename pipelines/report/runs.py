"""Whether each CRM's last run failed: from the run itself when `crm-invoices run` writes the report, else
from the trace dlt keeps in the pipeline's working dir (``Pipeline.last_trace``, public API)."""

from __future__ import annotations

from datetime import datetime

from ..settings import pipelines_dir, redact_text


def last_failure_from_trace(pipeline_name: str) -> tuple[datetime | None, str] | None:
    """(when, cause) of the pipeline's last run when it failed; None when it succeeded or never ran here."""
    if not (pipelines_dir() / pipeline_name).is_dir():
        return None
    import dlt
    from dlt.common.exceptions import DltException

    try:
        trace = dlt.attach(pipeline_name=pipeline_name, pipelines_dir=str(pipelines_dir())).last_trace
    except (DltException, OSError, ValueError):
        return None
    if trace is None:
        return None
    failed = [s for s in trace.steps if s.step_exception]
    if not failed:
        return None
    step = failed[-1]
    # the first line names the CRM and the cause; the rest is dlt's stack of wrappers
    cause = str(step.step_exception).strip().splitlines()[0][:400]
    return step.finished_at or trace.finished_at, redact_text(f"{step.step}: {cause}")
