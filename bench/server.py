"""The benchmark's sandbox, in a process of its own: ``python -m bench.server --invoices salesman=N,...``.

What ``python -m crm_invoices.sandbox serve`` does, plus what a benchmark needs from a server it cannot reach
into: invoices per provider (the sandbox CLI's ``--invoices`` gives every provider the same N), and request
counts, server time per API method and the server's own CPU over a control pipe. Protocol (one JSON line
each way): the first line on stdout is ``{"base_url", "env", "facts"}``; then every line on stdin is a
command, ``stats`` or ``reset``, answered with one JSON line; end of stdin stops the server.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import threading
import time
from collections import Counter

from crm_invoices.pipelines.registry import NAMES
from crm_invoices.sandbox.server import Sandbox
from crm_invoices.sandbox.world import World

PROVIDERS = NAMES
# the limit counters an emulator may keep (Bitrix24: 503s and batch sub-calls; ONLYOFFICE: throttled requests)
COUNTERS = ("rate_limited", "subcalls", "throttled")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


class TimedSandbox:
    """The sandbox with the server time of every request added up per (provider, method)."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.seconds: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._dispatch = sandbox.dispatch
        sandbox.dispatch = self._timed  # the handler calls server.sandbox.dispatch: the instance attribute wins

    def _key(self, request) -> str:
        for p in self.sandbox.providers:
            if p.handles(request.path) if hasattr(p, "handles") else request.path.startswith(p.prefix):
                return f"{p.name}|{p.method_key(request)}"
        return "none|none"

    def _timed(self, request):
        started = time.perf_counter()
        try:
            return self._dispatch(request)
        finally:
            elapsed = time.perf_counter() - started
            key = self._key(request)
            with self._lock:
                self.seconds[key] += elapsed

    def stats(self) -> dict:
        box = self.sandbox
        with box._lock:
            requests = {f"{p}|{m}": n for (p, m), n in box.requests.items()}
        with self._lock:
            seconds = dict(self.seconds)
        out = {"requests": requests, "seconds": seconds, "cpu": _cpu()}
        for name, provider in box.by_name.items():  # what an emulator counts of its API's limits
            for counter in COUNTERS:
                if hasattr(provider, counter):
                    value = getattr(provider, counter)
                    out[f"{name}_{counter}"] = dict(value) if isinstance(value, dict) else value
        return out

    def reset(self) -> None:
        box = self.sandbox
        box.reset_counts()
        with self._lock:
            self.seconds.clear()
        for provider in box.by_name.values():
            for counter in COUNTERS:
                value = getattr(provider, counter, None)
                if isinstance(value, dict):
                    value.clear()
                elif value is not None:
                    setattr(provider, counter, 0)
            if hasattr(provider, "bucket"):  # an empty bucket: each measured run starts after an idle portal
                provider.bucket.level = 0.0

def facts(sandbox: Sandbox) -> dict:
    """What the benchmark needs to state the API's bounds (row counts, invoice kinds, drafts)."""
    from crm_invoices.sandbox.onlyoffice.ledger import DRAFT, state

    world = sandbox.world
    kinds = [i.kind for i in world.invoices["bitrix24"]]
    return {
        "salesman_rows": len(sandbox["salesman"].rows),
        "bitrix24_smart": kinds.count("smart"), "bitrix24_legacy": len(kinds) - kinds.count("smart"),
        "onlyoffice_drafts": sum(1 for i in world.invoices["onlyoffice"] if state(i).status == DRAFT),
        # the plain-dlt baseline authenticates with a token the user pasted (ours logs in with the password)
        "onlyoffice_token": sandbox["onlyoffice"].portal.token,
        "bitrix24_webhook": sandbox["bitrix24"].webhook_url(sandbox.base_url),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("--invoices", default="", help="per provider, e.g. salesman=100000,bitrix24=0")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--options", default="{}", help='provider options as JSON, e.g. {"salesman": {"page_size": 30}}')
    args = parser.parse_args(argv)
    counts = dict.fromkeys(PROVIDERS, 0)
    for part in filter(None, args.invoices.split(",")):
        name, _, n = part.partition("=")
        counts[name.strip()] = int(n)
    # A world of a million invoices is millions of long-lived objects: the cyclic GC would walk them all again
    # and again while they are built (and on every request after). Built with the GC off, then frozen out of
    # its reach: the same data, a fraction of the time.
    gc.disable()
    world = World.generate(seed=args.seed, invoices=counts)
    sandbox = Sandbox(world, host="127.0.0.1", port=0, **json.loads(args.options))
    gc.freeze()
    gc.enable()
    timed = TimedSandbox(sandbox)
    sandbox.start()
    print(json.dumps({"base_url": sandbox.base_url, "env": sandbox.demo_env(), "facts": facts(sandbox)}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "reset":
            timed.reset()
            print(json.dumps({"ok": True}), flush=True)
        elif command == "stats":
            print(json.dumps(timed.stats()), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
