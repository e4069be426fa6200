from datetime import datetime

from django import forms
from django.utils import timezone

from console import timefmt
from integrations.connectors.registry import credentials, provider_choices
from integrations.models import ApiKey, ApiKeyAccess, ApiKeyScope, Authorization


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "scope", "access", "expires_at", "identity_kind", "identity_property"]
        widgets = {"expires_at": forms.DateTimeInput(attrs={"type": "datetime-local"})}
        labels = {"access": "Access (management keys)"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["access"].required = False  # inbound keys have none; a management key left blank reads
        # The blank choice says what it means instead of Django's "---------".
        self.fields["access"].choices = [("", "Read (the default)")] + [
            choice for choice in self.fields["access"].choices if choice[0] != ""
        ]
        for field in self.fields.values():  # "---------" says nothing: say what to do
            choices = list(getattr(field, "choices", []))
            if choices and choices[0] == ("", "---------"):
                field.choices = [("", "Choose…")] + choices[1:]
        # The typed time is read in the active zone: the workspace's (workspaces.middleware).
        self.fields["expires_at"].label = f"Expires (optional, {timefmt.zone_name()} time)"

    def clean_access(self) -> str:
        return self.cleaned_data.get("access") or ApiKeyAccess.READ

    def clean_expires_at(self) -> datetime | None:
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("Pick a time in the future, or leave it blank: the key does not expire.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        if data.get("identity_kind") == "property" and not data.get("identity_property"):
            self.add_error("identity_property", "Name the user property that holds the id.")
        if data.get("scope") == ApiKeyScope.MANAGEMENT:
            data["identity_kind"] = "user_id"
        return data


class AuthorizationForm(forms.Form):
    """Plain and secret fields of one provider. Secret inputs never render a saved value."""

    provider = forms.ChoiceField(choices=provider_choices)
    label = forms.CharField(max_length=120)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, provider: str, instance: Authorization | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance
        self.spec = credentials(provider)
        self.fields["provider"].initial = provider
        self.fields["provider"].widget = forms.HiddenInput()
        saved = instance.masked_secrets() if instance else {}
        for field in sorted(self.spec.fields, key=lambda f: f.secret):  # plain fields first
            if not field.secret:
                self.fields[f"field_{field.name}"] = forms.CharField(
                    label=field.label,
                    required=not field.optional,
                    help_text=field.help,
                    initial=(instance.fields.get(field.name) if instance else ""),
                )
                continue
            is_saved = bool(saved.get(field.name))
            self.fields[f"secret_{field.name}"] = forms.CharField(
                label=field.label,
                required=not (is_saved or field.optional),
                help_text=field.help,
                widget=forms.PasswordInput(
                    render_value=False,
                    attrs={"placeholder": "saved — leave blank to keep" if is_saved else "", "autocomplete": "off"},
                ),
            )
        if instance:
            self.fields["label"].initial = instance.label
            self.fields["description"].initial = instance.description

    def save(self, workspace) -> Authorization:
        data = self.cleaned_data
        auth = self.instance or Authorization(workspace=workspace, provider=data["provider"])
        auth.label = data["label"]
        auth.description = data["description"]
        auth.fields = {name: data[f"field_{name}"] for name in self.spec.plain_fields}
        auth.set_secrets({name: data.get(f"secret_{name}", "") for name in self.spec.secret_fields})
        auth.save()
        return auth

    def clean_label(self) -> str:
        label = self.cleaned_data["label"]
        workspace_id = self.initial.get("workspace_id")
        clash = Authorization.objects.filter(workspace_id=workspace_id, label=label)
        if self.instance:
            clash = clash.exclude(pk=self.instance.pk)
        if workspace_id and clash.exists():
            raise forms.ValidationError("An authorization with this label already exists.")
        return label
