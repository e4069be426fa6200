"""CLI: serve one fake partner until Ctrl-C (for the demo and manual testing)."""

from __future__ import annotations

import argparse
import json
import time

from . import KINDS, start_partner


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    try:
        return key, json.loads(value)  # numbers, booleans, lists, dicts
    except ValueError:
        return key, value  # plain strings need no quoting


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m integrations.sandbox.partners", description=__doc__)
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "-o",
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="partner option, VALUE parsed as JSON when possible (repeatable)",
    )
    args = parser.parse_args(argv)
    server, base_url = start_partner(args.kind, args.host, args.port, **dict(args.option))
    print(f"{args.kind} sandbox on {base_url}  (stats: {base_url}/_sandbox/stats; Ctrl-C to stop)", flush=True)
    try:
        # A timeout, not a bare wait(): the kernel may deliver Ctrl-C to a server thread, and a main
        # thread blocked with no timeout would never run Python's handler (KeyboardInterrupt).
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
