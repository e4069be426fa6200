"""Ops screens for credentials. Secrets are write-only here too: inputs never render a saved value."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from unfold.admin import ModelAdmin

from integrations.connectors.registry import all_credentials, credentials
from integrations.models import ApiKey, ApiKeyAccess, Authorization

ALL_SECRET_FIELDS = sorted({name for spec in all_credentials().values() for name in spec.secret_fields})


def _secret_input(name: str) -> forms.CharField:
    return forms.CharField(
        label=f"Secret: {name}",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. Leave blank to keep the saved value. Only the provider's own secrets are accepted.",
    )


class _AuthorizationAdminFormBase(forms.ModelForm):
    class Meta:
        model = Authorization
        fields = ["workspace", "provider", "label", "description", "fields"]

    def clean(self):
        data = super().clean()
        provider = data.get("provider")
        if provider:
            spec = credentials(provider)
            for name in ALL_SECRET_FIELDS:
                if data.get(f"secret_{name}") and name not in spec.secret_fields:
                    self.add_error(f"secret_{name}", f"{spec.label} has no secret named {name}.")
            unknown = set(data.get("fields") or {}) - set(spec.plain_fields)
            if unknown:
                self.add_error("fields", f"{spec.label} has no field(s) {', '.join(sorted(unknown))}.")
        return data

    def save(self, commit=True):
        auth = super().save(commit=False)
        spec = credentials(auth.provider)
        auth.set_secrets({name: self.cleaned_data.get(f"secret_{name}", "") for name in spec.secret_fields})
        if commit:
            auth.save()
        return auth


# One declared input per secret name of every provider (declared, so the admin renders them).
AuthorizationAdminForm = type(
    "AuthorizationAdminForm",
    (_AuthorizationAdminFormBase,),
    {f"secret_{name}": _secret_input(name) for name in ALL_SECRET_FIELDS},
)


@admin.register(Authorization)
class AuthorizationAdmin(ModelAdmin):
    form = AuthorizationAdminForm
    list_display = ["label", "provider", "workspace", "saved_secrets", "updated_at"]
    list_filter = ["provider", "workspace"]
    search_fields = ["label", "description", "workspace__name"]
    readonly_fields = ["saved_secrets", "created_at", "updated_at"]

    @admin.display(description="Secrets")
    def saved_secrets(self, obj: Authorization) -> str:
        if not obj.pk:
            return "—"
        return ", ".join(f"{name}: {value or 'not set'}" for name, value in obj.masked_secrets().items())


class ApiKeyAdminForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = [
            "workspace",
            "name",
            "scope",
            "access",
            "expires_at",
            "identity_kind",
            "identity_property",
            "revoked_at",
            "revoked_reason",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["access"].required = False  # inbound keys have none; a management key left blank reads

    def clean_access(self) -> str:
        return self.cleaned_data.get("access") or ApiKeyAccess.READ


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
    form = ApiKeyAdminForm
    list_display = [
        "name",
        "prefix",
        "workspace",
        "scope",
        "access",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["scope", "access", "workspace", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "workspace__name"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at"]
    actions = ["revoke_selected"]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = ApiKey.issue(
            obj.workspace,
            scope=obj.scope,
            name=obj.name,
            access=obj.access,
            expires_at=obj.expires_at,
            identity_kind=obj.identity_kind,
            identity_property=obj.identity_property,
            created_by=request.user,
        )
        obj.pk, obj.prefix = key.pk, key.prefix
        request._new_api_key = raw  # rendered once by response_add, never stored

    def response_add(self, request, obj, post_url_continue=None) -> HttpResponse:
        raw = getattr(request, "_new_api_key", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "key": obj, "raw_key": raw, "title": "New API key"}
        return TemplateResponse(request, "admin/integrations/apikey/created.html", context)

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request, queryset) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_reason=f"revoked by {request.user} in the admin"[:200]
        )
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)
