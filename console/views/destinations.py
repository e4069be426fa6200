"""Destinations: add one of each registry kind with its own fields, test it, read its partner-call log.

Validation is the management API's own (DestinationSerializer + the connector's Config serializer), so
the console and the API can never disagree about what a valid destination is. The form is generated
from the Config serializer: a new connector kind gets a console form without template work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.contrib import messages
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from rest_framework import serializers

from config.params import is_plain_int
from console import pending, words
from console.access import credentials_required, member_required, setup_page
from console.asking import ask_context, kind_label
from console.paging import keyset_page
from integrations.connectors.registry import CONNECTORS, connector_class, credentials, destination_section
from integrations.credentials import Credentials
from integrations.delivery import actions
from integrations.delivery.api import DestinationSerializer
from integrations.delivery.models import ACTIVE_STATUSES, Destination, PartnerCall, SyncRun
from integrations.models import Authorization
from workspaces.models import SetupTopic

CALLS_SHOWN = 50


@dataclass
class Input:
    """One rendered form input: what the template needs, nothing more (secrets never get a value)."""

    name: str
    label: str
    widget: str  # text | password | number | checkbox | select | textarea
    value: object = ""
    help: str = ""
    required: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    placeholder: str = ""


def _widget(serializer_field: serializers.Field) -> str:
    if isinstance(serializer_field, serializers.ChoiceField):
        return "select"
    if isinstance(serializer_field, serializers.BooleanField):
        return "checkbox"
    if isinstance(serializer_field, serializers.IntegerField):
        return "number"
    if isinstance(serializer_field, serializers.ListField | serializers.DictField | serializers.BaseSerializer):
        return "textarea"
    return "text"


def _shown(value: object, widget: str) -> object:
    """A saved config value as the input shows it: lists comma-separated, dicts/nested as JSON."""
    if widget == "textarea":
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return ", ".join(value)
        return json.dumps(value, indent=1) if value not in (None, "", {}, []) else ""
    return "" if value is None else value


def _default(serializer_field: serializers.Field) -> object:
    default = serializer_field.default
    if default is serializers.empty:
        return ""
    return default() if callable(default) else default


def host_choices(kind: str, name: str, value: object) -> list[tuple[str, str]] | None:
    """A URL the partner fixes is chosen, never typed: its hosts (or "" for "the region's host"), plus
    the saved value when it is one the operator allowed. None for a field that is the customer's URL."""
    cls = connector_class(kind)
    field_ = cls.Config().fields[name]
    if not cls.hosts or name not in cls.host_fields or not isinstance(field_, serializers.URLField):
        return None
    if _default(field_) == "":  # blank: the host of the region chosen in another field
        choices = [("", "The host of the chosen region")]
    else:
        choices = [(host.url, f"{host.label} ({host.url})") for host in cls.hosts.values()]
    if value and str(value) not in {choice for choice, _ in choices}:
        choices.append((str(value), f"Set by an operator: {value}"))
    return choices


def config_inputs(kind: str, values: dict, errors: dict) -> list[Input]:
    inputs = []
    for name, serializer_field in connector_class(kind).Config().fields.items():
        widget = _widget(serializer_field)
        value = values[name] if name in values else _default(serializer_field)
        hosts = host_choices(kind, name, value)
        if hosts is not None:
            if len(hosts) < 2 and not errors.get(name):
                continue  # one host, nothing to choose: the partner's own
            inputs.append(
                Input(
                    name=f"cfg_{name}",
                    label="Host",
                    widget="select",
                    value=value or "",
                    help="Fixed by the partner; another host only where an operator allowed it.",
                    choices=hosts,
                    errors=[str(message) for message in errors.get(name, [])],
                )
            )
            continue
        raw_errors = errors.get(name, [])
        if isinstance(raw_errors, dict):  # nested serializer: flatten "key: message"
            raw_errors = [f"{key}: {' '.join(map(str, msgs))}" for key, msgs in raw_errors.items()]
        inputs.append(
            Input(
                name=f"cfg_{name}",
                label=words.field_label(name, serializer_field.label),
                widget=widget,
                value=value if widget in ("checkbox", "select") else _shown(value, widget),
                help=str(serializer_field.help_text or ""),
                required=serializer_field.required,
                choices=[(str(k), str(v)) for k, v in getattr(serializer_field, "choices", {}).items()],
                errors=[str(message) for message in raw_errors],
            )
        )
    return inputs


def parse_config(kind: str, post) -> tuple[dict, dict]:
    """POSTed inputs → the config dict the Config serializer validates, plus parse errors per field."""
    config, errors = {}, {}
    for name, serializer_field in connector_class(kind).Config().fields.items():
        widget = _widget(serializer_field)
        raw = post.get(f"cfg_{name}", "")
        if widget == "checkbox":
            config[name] = f"cfg_{name}" in post
            continue
        raw = raw.strip()
        if raw == "":
            if serializer_field.required:
                config[name] = ""  # let the serializer say "required" in its own words
            continue  # blank optional field: the serializer's default applies
        if widget == "textarea":
            if raw[0] in "[{":
                try:
                    config[name] = json.loads(raw)
                except ValueError as exc:
                    errors[name] = [f"Not valid JSON: {exc}"]
            elif isinstance(serializer_field, serializers.ListField):
                config[name] = [item.strip() for item in raw.split(",") if item.strip()]
            else:
                errors[name] = ['Enter JSON, e.g. {"X-Header": "value"}.']
        else:
            config[name] = raw
    return config, errors


def credential_inputs(spec: Credentials, post=None, errors: dict | None = None) -> list[Input]:
    errors = errors or {}
    inputs = [
        Input(
            name=f"cred_{field.name}",
            label=field.label,
            widget="text",
            value=(post or {}).get(f"cred_{field.name}", ""),
            help=field.help,
            errors=errors.get(field.name, []),
        )
        for field in spec.fields
        if not field.secret
    ]
    # Password inputs that never carry a value: a saved secret is never sent back to a browser.
    inputs += [
        Input(
            name=f"secret_{field.name}",
            label=field.label,
            widget="password",
            help=field.help,
            errors=errors.get(field.name, []),
        )
        for field in spec.fields
        if field.secret
    ]
    return inputs


@member_required
def destination_list(request) -> HttpResponse:
    destinations = (
        Destination.objects.for_workspace(request.workspace).annotate(sync_count=Count("sync_jobs")).order_by("name")
    )
    kinds = [(kind, spec.label) for kind, spec in CONNECTORS.items()]
    return render(request, "console/destinations/list.html", {"destinations": destinations, "kinds": kinds})


def _form_context(
    request, kind: str, instance: Destination | None, config_values: dict, config_errors: dict, errors: dict, post=None
) -> dict:
    spec = credentials(kind)
    return {
        "kind": kind,
        "kind_label": CONNECTORS[kind].label,
        "instance": instance,
        "name": (post or {}).get("name", instance.name if instance else ""),
        "name_errors": errors.get("name", []),
        "credentials": credential_inputs(spec, post, errors.get("credentials")),
        "credential_errors": errors.get("authorization", []),
        "provider_label": spec.label,
        "authorizations": Authorization.objects.for_workspace(request.workspace)
        .filter(provider=kind)
        .order_by("label"),
        "chosen_authorization": str(
            (post or {}).get("authorization", instance.authorization_id if instance else "") or ""
        ),
        "config": config_inputs(kind, config_values, config_errors),
        "form_errors": errors.get("non_field_errors", []),
    }


def _unique_label(workspace, label: str) -> str:
    taken = set(
        Authorization.objects.filter(workspace=workspace, label__startswith=label).values_list("label", flat=True)
    )
    if label not in taken:
        return label
    return next(f"{label} ({n})" for n in range(2, len(taken) + 3) if f"{label} ({n})" not in taken)


def _save(request, kind: str, instance: Destination | None):
    """Validate with the API serializer, test the credentials against the partner, and only then save
    the destination (and new credentials) atomically; a failed test saves only on "Save anyway"."""
    cls, spec = connector_class(kind), credentials(kind)
    config, parse_errors = parse_config(kind, request.POST)
    chosen = request.POST.get("authorization", "")
    token = request.POST.get("pending", "")
    kept = pending.take(request, token)  # secrets typed before a failed test (never sent back)
    plain = {name: request.POST.get(f"cred_{name}", "").strip() for name in spec.plain_fields}
    secret = {name: request.POST.get(f"secret_{name}", "") or kept.get(name, "") for name in spec.secret_fields}
    new_credentials = any(secret.values()) or any(plain.values())
    errors: dict = {}
    authorization = None
    if chosen and not new_credentials:
        authorization = (
            Authorization.objects.for_workspace(request.workspace)
            .filter(provider=kind, pk=int(chosen) if is_plain_int(chosen) else 0)
            .first()
        )
        if authorization is None:
            errors["authorization"] = [f"Choose a {spec.label} authorization of this workspace."]
    elif not new_credentials and instance is None and spec.required:  # else every credential is optional
        errors["authorization"] = ["Enter the credentials, or choose a saved authorization."]
    data = {
        "kind": kind,
        "name": request.POST.get("name", "").strip(),
        "config": config,
        "authorization": authorization.pk
        if authorization
        else (instance.authorization_id if instance and not new_credentials else None),
    }
    serializer = DestinationSerializer(instance=instance, data=data, context={"request": request})
    valid = serializer.is_valid()
    detail = dict(serializer.errors) if not valid else {}
    config_errors = {**parse_errors}
    # DRF skips the serializer's validate() (where the config is checked) when a plain field such as
    # the name is wrong; run the connector's Config serializer too so every error shows at once.
    config_check = cls.Config(data=config)
    if not config_check.is_valid():
        config_errors = {**config_check.errors, **config_errors}
    if isinstance(detail.get("config"), dict):
        config_errors.update(detail.pop("config"))
    elif detail.get("config"):
        errors.setdefault("non_field_errors", []).extend(map(str, detail.pop("config")))
    for key, messages_ in detail.items():
        errors.setdefault(key if key in ("name", "authorization") else "non_field_errors", []).extend(
            map(str, messages_)
        )
    # New credentials on an edit update the destination's own authorization when nothing else uses it;
    # after a change of host they replace it whole (a blank secret keeps nothing from the old host).
    own = instance.authorization if instance is not None and instance.authorization_id else None
    if own is not None and (own.destinations.exclude(pk=instance.pk).exists() or own.amplitude_projects.exists()):
        own = None
    host_changed = (
        instance is not None
        and valid
        and cls.host_values(serializer.validated_data["config"]) != cls.host_values(instance.config)
    )
    if new_credentials and (instance is None or own is None or host_changed):
        missing = [f.label for f in spec.fields if f.secret and not f.optional and not secret.get(f.name)]
        if missing:
            again = " again: the host changed" if host_changed else ""
            errors.setdefault("authorization", []).append(f"Enter {', '.join(missing)}{again}.")
    label = f"{data['name']} credentials"
    if (
        new_credentials
        and instance is None
        and Authorization.objects.filter(workspace=request.workspace, label=label).exists()
    ):
        errors["authorization"] = [f"An authorization labelled “{label}” exists already: choose it or rename."]
    if errors or config_errors:
        return None, _form_context(request, kind, instance, config, config_errors, errors, request.POST)

    # The destination as it would be saved, with the credentials it would use: tested first.
    candidate = Destination(workspace=request.workspace, kind=kind, name=data["name"])
    candidate.config = serializer.validated_data["config"]
    new_auth = None
    if new_credentials:
        new_auth = own or Authorization(workspace=request.workspace, provider=kind)
        if own is None:
            new_auth.label = label if instance is None else _unique_label(request.workspace, label)
        new_auth.fields = plain
        if host_changed:
            new_auth.secrets_ciphertext = ""
        new_auth.set_secrets({k: v for k, v in secret.items() if v})
        candidate.authorization = new_auth
    else:
        candidate.authorization = serializer.validated_data.get(
            "authorization", instance.authorization if instance else None
        )
    ok, tested = actions.trial_connection_test(candidate)
    if not ok and not request.POST.get("save_anyway"):
        context = _form_context(request, kind, instance, config, {}, {}, request.POST)
        context.update(test_failed=tested, pending=pending.keep(request, secret))
        for input_ in context["credentials"]:
            if input_.widget == "password" and secret.get(input_.name.removeprefix("secret_")):
                input_.placeholder = "kept from your last try: leave blank to use it"
        return None, context
    with transaction.atomic():
        extra = {}
        if new_auth is not None:
            new_auth.save()
            extra["authorization"] = new_auth
        saved = serializer.save(workspace=request.workspace, **extra)
    pending.drop(request, token)
    if ok:
        messages.success(request, f"Connection tested: {tested}")
    else:
        messages.warning(request, f"Saved without a working connection: {tested}")
    return saved, None


@setup_page
def destination_new(request, kind) -> HttpResponse:
    if kind not in CONNECTORS:
        raise Http404("unknown kind")
    if not request.membership.can_manage_credentials:  # read-only: what it asks for, and "ask an owner or ops"
        context = _form_context(request, kind, None, {}, {}, {})
        context.update(readonly=True, kind=kind, authorizations=[])
        why = f"Adding a {CONNECTORS[kind].partner} destination needs its credentials."
        context.update(ask_context(request, SetupTopic.DESTINATION, kind_label(kind), why=why))
        return render(request, "console/destinations/form.html", context)
    if request.method == "POST":
        destination, context = _save(request, kind, None)
        if destination is not None:
            messages.success(request, f"Destination “{destination.name}” saved.")
            return redirect("console:destination", pk=destination.pk)
        return render(request, "console/destinations/form.html", context, status=400)
    return render(request, "console/destinations/form.html", _form_context(request, kind, None, {}, {}, {}))


@credentials_required
def destination_edit(request, pk) -> HttpResponse:
    destination = get_object_or_404(Destination.objects.for_workspace(request.workspace), pk=pk)
    if request.method == "POST":
        saved, context = _save(request, destination.kind, destination)
        if saved is not None:
            messages.success(request, f"Destination “{saved.name}” updated.")
            return redirect("console:destination", pk=saved.pk)
        return render(request, "console/destinations/form.html", context, status=400)
    return render(
        request,
        "console/destinations/form.html",
        _form_context(request, destination.kind, destination, destination.config, {}, {}),
    )


@member_required
def destination_detail(request, pk) -> HttpResponse:
    destination = get_object_or_404(
        Destination.objects.for_workspace(request.workspace).select_related("authorization"), pk=pk
    )
    calls = PartnerCall.objects.filter(destination=destination)
    outcome = request.GET.get("outcome", "")
    if outcome in PartnerCall.OUTCOMES:
        calls = calls.filter(PartnerCall.OUTCOMES[outcome][1])
    context = {
        "destination": destination,
        "calls": keyset_page(calls, ("-id",), request.GET, prefix="calls_", size=CALLS_SHOWN),
        "call_outcome": outcome if outcome in PartnerCall.OUTCOMES else "",
        "call_outcomes": [(key, label) for key, (label, _) in PartnerCall.OUTCOMES.items()],
        "calls_refused": PartnerCall.objects.filter(destination=destination)
        .filter(PartnerCall.OUTCOMES["refused"][1])
        .count(),  # the call log keeps DELIVERY_CALL_LOG_SIZE calls per destination: a small count
        "jobs": destination.sync_jobs.select_related("segment").order_by("segment__name"),
        **destination_section(destination),  # the partner's own section, when it has one
    }
    return render(request, "console/destinations/detail.html", context)


@credentials_required
def destination_test(request: HttpRequest, pk: int) -> HttpResponse:
    destination = get_object_or_404(Destination.objects.for_workspace(request.workspace), pk=pk)
    if request.method != "POST":
        return redirect("console:destination", pk=pk)
    ok, message = actions.run_connection_test(destination)
    destination.refresh_from_db()
    return render(
        request, "console/destinations/_test_result.html", {"ok": ok, "message": message, "destination": destination}
    )


@credentials_required
def destination_delete(request, pk) -> HttpResponse:
    destination = get_object_or_404(Destination.objects.for_workspace(request.workspace), pk=pk)
    if request.method == "POST":
        if SyncRun.objects.filter(job__destination=destination, status__in=ACTIVE_STATUSES).exists():
            messages.error(request, "A sync to this destination is running; delete it after the run ends.")
            return redirect("console:destination", pk=pk)
        name = destination.name
        destination.delete()  # its syncs go with it; the saved authorization stays for reuse
        messages.success(request, f"Destination “{name}” and its syncs deleted.")
        return redirect("console:destinations")
    return render(request, "console/destinations/delete.html", {"destination": destination})
