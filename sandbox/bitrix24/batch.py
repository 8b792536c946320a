"""``batch``: at most 50 commands, ``$result[...]`` references, ``result_error`` / ``result_next``, empty maps
written as ``[]`` the way PHP's json_encode does."""

from __future__ import annotations

import time as _time
from urllib.parse import parse_qsl

from .options import PAGE
from .wire import BitrixError, php_params, resolve


class BatchEngine:
    """Mixed into the provider, which supplies ``_call``, ``_check_block``, ``_time``, ``portal`` and the
    ``expire_in_batch_after`` fault."""

    def _batch(self, params: dict) -> dict:
        cmd = params.get("cmd")
        halt = str(params.get("halt", "0")) in ("1", "true", "True")
        if isinstance(cmd, list):
            cmd = {str(i): c for i, c in enumerate(cmd)}
        if not isinstance(cmd, dict) or not cmd:
            raise BitrixError("ERROR_BATCH_METHOD_NOT_ALLOWED" if cmd else "INVALID_ARG_VALUE",
                              "Batch commands are missing", 400)
        if len(cmd) > PAGE:
            raise BitrixError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded", 400)
        results, errors, totals, nexts, times = {}, {}, {}, {}, {}
        expire_after, self.expire_in_batch_after = self.expire_in_batch_after, None
        for n, (key, line) in enumerate(cmd.items()):
            started = _time.time()
            if expire_after is not None and n >= expire_after:
                # the access token ran out while the portal worked through the batch: the later commands fail
                self.expire_access_tokens()
                errors[key] = {"error": "expired_token", "error_description": "The access token provided has expired."}
                continue
            method, _, query = str(line).partition("?")
            method = method.strip("/").removesuffix(".json")
            pairs = [(k, resolve(v, results)) for k, v in parse_qsl(query, keep_blank_values=True)]
            try:
                if method == "batch":
                    raise BitrixError("ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage", 405)
                self._check_block(method)
                out = self._call(method, php_params(pairs))
            except BitrixError as err:
                errors[key] = {"error": err.code, "error_description": err.description}
                if halt:
                    break
                continue
            results[key] = out["result"]
            if "total" in out:
                totals[key] = out["total"]
            if "next" in out:
                nexts[key] = out["next"]
            times[key] = self._time(started)
        # PHP's json_encode writes an empty array for an empty map: clients must accept both shapes
        if errors and self.portal.batch_errors_as_list:
            errors = list(errors.values())
        return {"result": results or [], "result_error": errors or [], "result_total": totals or [],
                "result_next": nexts or [], "result_time": times or []}
