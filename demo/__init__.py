"""The demo of `python3 dev.py run`: sandbox servers, and a workspace seeded to show every capability.

- servers.py: the fake Amplitude and fake partners in one process (stdlib only, no Django);
- seed.py: the demo workspace, its people and login, then each part below in order;
- sources.py, delivery.py, partners.py, inbound.py, erasure.py: one part per capability, run against
  the sandboxes through the real code paths.
`manage.py seed_demo` (this app's command) runs seed.py. A new capability adds its part here, so
the demo keeps showing everything.
"""
