"""``python -m crm_invoices.sandbox serve --port N``: run the emulated CRMs until interrupted."""

from __future__ import annotations

import argparse
import json
import sys

from .server import Sandbox
from .world import SYSTEMS, World


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_invoices.sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve every emulated provider on one loopback port")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--seed", type=int, default=20261123)
    serve.add_argument("--invoices", type=int, default=90, help="invoices per provider")
    serve.add_argument("--options", default="{}", help='provider options as JSON, e.g. {"salesman": {"page_size": 50}}')
    serve.add_argument("--faults", default="{}",
                       help='failure injection per provider as JSON, e.g. {"salesman": {"delay": 0.2, "fail_next": 3}}')
    serve.add_argument("--anomalies", action="store_true", help="plant one case of each reconciliation rule")
    args = parser.parse_args(argv)
    world = World.generate(seed=args.seed, invoices=dict.fromkeys(SYSTEMS, args.invoices),
                           anomalies=args.anomalies)
    sandbox = Sandbox(world, host=args.host, port=args.port, **json.loads(args.options))
    for name, faults in json.loads(args.faults).items():
        for key, value in faults.items():
            setattr(sandbox[name].faults, key, value)
    print(f"sandbox serving at {sandbox.base_url}", file=sys.stderr)
    for key, value in sorted(sandbox.demo_env().items()):
        print(f"export {key}={value}")
    sys.stdout.flush()
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
