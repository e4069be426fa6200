"""What the demo workspace shows. Each capability adds its part here, so the demo stays alive."""

from integrations.models import ApiKey, ApiKeyScope


def populate_demo(workspace, state: dict, out) -> None:
    # An inbound key for Amplitude's cohort sync; the raw value is kept in the git-ignored state
    # file so the demo can print it on every start (a real key is shown once only).
    key_prefix = state.get("inbound_key_prefix")
    if not key_prefix or not ApiKey.objects.filter(prefix=key_prefix, revoked_at__isnull=True).exists():
        key, raw = ApiKey.issue(workspace, scope=ApiKeyScope.INBOUND, name="Amplitude cohort sync (demo)")
        state["inbound_key_prefix"], state["inbound_key"] = key.prefix, raw
    out.write(f"  Demo inbound API key: {state['inbound_key']}")

    from integrations.sources.demo import populate_demo as populate_sources_demo

    populate_sources_demo(workspace, state, out)
