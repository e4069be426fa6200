"""What the demo workspace shows. Each capability adds its part here, so the demo stays alive.

Order matters: sources import cohorts from the sandbox Amplitude first, then destinations and
syncs are set up on those segments, then partner extras, then a few pushes arrive as Amplitude
would send them.
"""

from django.utils.module_loading import import_string

from integrations.models import ApiKey, ApiKeyScope

PARTS = (
    "integrations.sources.demo.populate_demo",
    "integrations.delivery.demo.populate_demo",
    "campaigns.demo.populate_demo",
    "integrations.inbound.demo.populate_demo",
)


def populate_demo(workspace, state: dict, out) -> None:
    # An inbound key for Amplitude's cohort sync; the raw value is kept in the git-ignored state
    # file so the demo can print it on every start (a real key is shown once only).
    key_prefix = state.get("inbound_key_prefix")
    if not key_prefix or not ApiKey.objects.filter(prefix=key_prefix, revoked_at__isnull=True).exists():
        key, raw = ApiKey.issue(workspace, scope=ApiKeyScope.INBOUND, name="Amplitude cohort sync (demo)")
        state["inbound_key_prefix"], state["inbound_key"] = key.prefix, raw
    out.write(f"  Demo inbound API key: {state['inbound_key']}")
    for path in PARTS:
        import_string(path)(workspace, state, out)
