"""All sandbox servers in one process, for the demo workspace of `python3 dev.py run`
(`python -m demo.servers`; stdlib only, no Django).

Starts the fake Amplitude (cohorts + Export API) and every fake partner on free loopback ports,
prints one `SANDBOX_<NAME>_URL=<url>` line per server (the run command reads them and passes them
to the web server, the worker and seed_demo), then serves until SIGTERM/SIGINT.

The demo's credentials are fixed and public on purpose (they open nothing but these fakes), so
seed_demo can configure matching authorizations.
"""

import argparse
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from integrations.sandbox.amplitude import build_demo_sandbox, start_amplitude_sandbox, stop_amplitude_sandbox
from integrations.sandbox.partners import start_partner

DEMO_CREDENTIALS = {
    "amplitude": {"api_key": "demo", "secret_key": "demo-secret"},
    "list_api": {"api_key": "demo-list-key"},
    "traits_api": {"api_key": "demo-traits-key"},
    "cohort_webhook": {"header_name": "X-Demo-Token", "header_value": "demo-webhook-token"},
    "clevertap": {"account_id": "DEMO-ACCOUNT", "passcode": "demo-passcode"},
    "kahuna": {"secret_key": "demo-kahuna-secret", "api_key": "demo-kahuna-api"},
    "kochava": {"app_guid": "kodemo-app-guid"},
}

_PARTNER_OPTIONS = {
    "list_api": {"api_key": DEMO_CREDENTIALS["list_api"]["api_key"], "record_bodies": False},
    "traits_api": {"api_key": DEMO_CREDENTIALS["traits_api"]["api_key"], "record_bodies": False},
    "cohort_webhook": {},
    "clevertap": {"account_id": "DEMO-ACCOUNT", "passcode": "demo-passcode"},
    "kochava": {},
    "kahuna": {
        "secret_key": "demo-kahuna-secret",
        "api_key": "demo-kahuna-api",
        "campaigns": {
            "p": [
                {"id": "adaptive-welcome", "name": "Welcome back", "enabled": True, "type": "adaptive"},
                {"id": "adaptive-old", "name": "Old promo", "enabled": False, "type": "adaptive"},
            ],
            "s": [{"id": "adaptive-test", "name": "Sandbox test campaign", "enabled": True, "type": "adaptive"}],
        },
    },
}


def env_name(kind: str) -> str:
    return f"SANDBOX_{kind.upper()}_URL"


@contextmanager
def running_demo_servers(members: int = 2000, cohorts: int = 3, events_per_hour: int = 200) -> Iterator[dict[str, str]]:
    """Every demo sandbox on a free loopback port, as {"SANDBOX_<NAME>_URL": url}; stopped on exit."""
    amplitude = build_demo_sandbox(cohorts=cohorts, members=members, events_days=1, events_per_hour=events_per_hour)
    amplitude_server, amplitude_url = start_amplitude_sandbox(amplitude)
    servers = []
    urls = {env_name("amplitude"): amplitude_url}
    try:
        for kind, options in _PARTNER_OPTIONS.items():
            server, url = start_partner(kind, **options)
            servers.append(server)
            urls[env_name(kind)] = url
        yield urls
    finally:
        for server in servers:
            server.stop()
        stop_amplitude_sandbox(amplitude_server)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2000, help="members per demo cohort")
    parser.add_argument("--cohorts", type=int, default=3)
    args = parser.parse_args(argv)

    with running_demo_servers(members=args.members, cohorts=args.cohorts) as urls:
        for name, url in urls.items():
            print(f"{name}={url}", flush=True)
        print("SANDBOX_READY=1", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while not stop.wait(0.5):  # a timeout: the signal may land on a server thread (see partners.__main__)
            pass


if __name__ == "__main__":
    main()
