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
    # dlt wraps the source's own error (which names the CRM, the cause and the fix) in its step errors: the
    # innermost exception trace is that error; the wrapper's text ends with it when there are no traces
    traces = getattr(step, "exception_traces", None) or []
    cause = traces[-1].get("message") if traces else None
    if not cause:
        lines = [line for line in str(step.step_exception).strip().splitlines() if line.strip()]
        cause = lines[-1] if lines else "unknown error"
    cause = cause.split("caused an exception: ")[-1]
    return step.finished_at or trace.finished_at, redact_text(f"{cause[:600]} (dlt step: {step.step})")
