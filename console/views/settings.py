from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from console.access import credentials_required, member_required, setup_page
from console.asking import ask_context
from console.forms import ApiKeyForm, AuthorizationForm
from integrations.connectors.registry import all_credentials
from integrations.models import ApiKey, Authorization
from workspaces.middleware import SESSION_KEY
from workspaces.models import Membership, SetupTopic


@login_required
@require_POST
def switch_workspace(request) -> HttpResponseRedirect:
    membership = Membership.objects.filter(user=request.user, workspace__slug=request.POST.get("workspace")).first()
    if membership is None:
        raise Http404("No such workspace.")
    request.session[SESSION_KEY] = membership.workspace_id
    return redirect(safe_next(request, request.POST.get("next")))


def safe_next(request, target: str | None, default: str = "console:dashboard") -> str:
    """`target` when it stays on this site (a path, or this host over the request's scheme), else
    `default`: a `next` field must never send anyone to another site (open redirect)."""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


NEW_KEY_SESSION = "new_api_key"


@setup_page
def api_keys(request) -> HttpResponse:
    workspace = request.workspace
    if not request.membership.can_manage_credentials:  # read-only: the keys' prefixes and states, no form
        keys = ApiKey.objects.for_workspace(workspace).order_by("-created_at")
        context = {
            "keys": keys,
            "readonly": True,
            **ask_context(request, SetupTopic.INBOUND_KEY, why="An inbound key lets Amplitude push cohorts here."),
        }
        return render(request, "console/api_keys.html", context)
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        _key, raw = ApiKey.issue(
            workspace,
            scope=data["scope"],
            name=data["name"],
            access=data["access"],
            expires_at=data["expires_at"],
            identity_kind=data["identity_kind"],
            identity_property=data["identity_property"],
            created_by=request.user,
        )
        # Post/redirect/get, with the raw key parked in the server-side session (never a cookie)
        # and popped by the next page view: shown exactly once, and a reload cannot re-create it.
        request.session[NEW_KEY_SESSION] = raw
        return redirect("console:api-keys")
    new_key = request.session.pop(NEW_KEY_SESSION, None)
    keys = ApiKey.objects.for_workspace(workspace).order_by("-created_at")
    return render(request, "console/api_keys.html", {"form": form, "keys": keys, "new_key": new_key})


@credentials_required
@require_POST
def revoke_api_key(request, pk) -> HttpResponseRedirect:
    key = get_object_or_404(ApiKey.objects.for_workspace(request.workspace), pk=pk)
    key.revoke(f"revoked by {request.user}")
    messages.success(request, f"Key {key.prefix}… revoked. Requests using it now get 401.")
    return redirect("console:api-keys")


@setup_page
def authorizations(request) -> HttpResponse:
    workspace = request.workspace
    provider = request.POST.get("provider") or request.GET.get("provider")
    providers = all_credentials()
    form = None
    if not request.membership.can_manage_credentials:  # read-only: labels and providers, never a field
        context = {
            "rows": Authorization.objects.for_workspace(workspace).order_by("label"),
            "providers": providers,
            "readonly": True,
            **ask_context(
                request, SetupTopic.AUTHORIZATION, why="Partner credentials let destinations reach partners."
            ),
        }
        return render(request, "console/authorizations.html", context)
    if provider in providers:
        form = AuthorizationForm(request.POST or None, provider=provider, initial={"workspace_id": workspace.pk})
        if request.method == "POST" and form.is_valid():
            auth = form.save(workspace)
            messages.success(request, f"Authorization “{auth.label}” saved. Its secrets are encrypted and hidden.")
            return redirect("console:authorizations")
    rows = Authorization.objects.for_workspace(workspace).order_by("label")
    return render(
        request,
        "console/authorizations.html",
        {"rows": rows, "form": form, "providers": providers, "provider": provider},
    )


@credentials_required
def authorization_edit(request, pk) -> HttpResponse:
    auth = get_object_or_404(Authorization.objects.for_workspace(request.workspace), pk=pk)
    if request.method == "POST" and request.POST.get("delete"):
        auth.delete()
        messages.success(request, f"Authorization “{auth.label}” deleted.")
        return redirect("console:authorizations")
    form = AuthorizationForm(
        request.POST or None, provider=auth.provider, instance=auth, initial={"workspace_id": request.workspace.pk}
    )
    if request.method == "POST" and form.is_valid():
        form.save(request.workspace)
        messages.success(request, f"Authorization “{auth.label}” updated.")
        return redirect("console:authorizations")
    return render(request, "console/authorization_edit.html", {"auth": auth, "form": form})


@member_required
def amplitude_setup(request) -> HttpResponse:
    """The exact URLs and auth to paste into Amplitude's partner (cohort sync) settings."""
    base = request.build_absolute_uri("/").rstrip("/")
    keys = ApiKey.objects.for_workspace(request.workspace).active().filter(scope="inbound").order_by("-created_at")
    endpoints = [
        ("List creation API", "POST", f"{base}/api/amplitude/lists"),
        ("Add users API", "POST", f"{base}/api/amplitude/lists/$listId/add"),
        ("Remove users API", "POST", f"{base}/api/amplitude/lists/$listId/remove"),
        ("Update API (property-based)", "POST", f"{base}/api/amplitude/identify"),
        ("Cohort webhook destination", "POST", f"{base}/api/amplitude/cohort-webhook"),
        ("Segment / RudderStack SDK endpoint (data plane URL)", "POST", f"{base}/v1/batch"),
    ]
    context = {"endpoints": endpoints, "keys": keys, "base": base}
    if not request.membership.can_manage_credentials and not keys:
        context.update(ask_context(request, SetupTopic.INBOUND_KEY, why="Amplitude needs an inbound key to push here."))
    return render(request, "console/amplitude_setup.html", context)
