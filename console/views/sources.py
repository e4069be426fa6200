"""Sources: connect an Amplitude project, its cohort and event imports, runs (docs/sources.md)."""

import zoneinfo

from django import forms
from django.contrib import messages
from django.db import transaction
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from console.access import action_required, credentials_required, member_required
from integrations.models import Authorization
from integrations.outbound import validate_outbound_url
from integrations.sources import quota
from integrations.sources.actions import create_run, retry_run
from integrations.sources.amplitude import AmplitudeError
from integrations.sources.cohorts import list_project_cohorts
from integrations.sources.models import AmplitudeProject, CohortImportJob, EventImportJob, ImportRun, Region
from integrations.sources.runs import RunStateError
from integrations.sources.scheduling import first_run_at

TIMEZONES = sorted(zoneinfo.available_timezones())


class ConnectAmplitudeForm(forms.Form):
    label = forms.CharField(max_length=120, help_text="A name for this project in the console.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    api_key = forms.CharField(label="API Key", widget=forms.PasswordInput(render_value=False))
    secret_key = forms.CharField(label="API Secret", widget=forms.PasswordInput(render_value=False))
    region = forms.ChoiceField(choices=Region.choices, initial=Region.US)
    base_url = forms.URLField(
        required=False,
        label="Base URL override",
        assume_scheme="https",
        validators=[validate_outbound_url],
        help_text="Leave blank for Amplitude itself; set it for a proxy or the sandbox.",
    )

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace

    def clean_label(self):
        label = self.cleaned_data["label"]
        if (
            AmplitudeProject.objects.filter(workspace=self.workspace, label=label).exists()
            or Authorization.objects.filter(workspace=self.workspace, label=label).exists()
        ):
            raise forms.ValidationError("A project or authorization with this label already exists.")
        return label

    @transaction.atomic
    def save(self) -> AmplitudeProject:
        data = self.cleaned_data
        auth = Authorization(
            workspace=self.workspace, provider="amplitude", label=data["label"], description=data["description"]
        )
        auth.set_secrets({"api_key": data["api_key"], "secret_key": data["secret_key"]})
        auth.save()
        return AmplitudeProject.objects.create(
            workspace=self.workspace,
            label=data["label"],
            region=data["region"],
            base_url=data["base_url"],
            authorization=auth,
        )


class CohortJobForm(forms.ModelForm):
    cohort_ids = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Cohorts",
        help_text="None ticked = import every cohort.",
    )
    prop_keys = forms.CharField(
        required=False, label="Only these user properties", help_text="Comma-separated; blank = all user properties."
    )
    timezone = forms.ChoiceField(choices=[(tz, tz) for tz in TIMEZONES], initial="UTC")

    class Meta:
        model = CohortImportJob
        fields = [
            "label",
            "cohort_ids",
            "include_properties",
            "prop_keys",
            "amplitude_id_field",
            "cohort_names_field",
            "cadence",
            "time_of_day",
            "timezone",
        ]
        widgets = {"time_of_day": forms.TimeInput(attrs={"type": "time"})}

    def __init__(self, *args, cohorts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cohort_ids"].choices = [
            (c["id"], f"{c['name']} — {c['size'] if c['size'] is not None else '?'} users") for c in cohorts
        ]

    def clean_prop_keys(self):
        return [key.strip() for key in self.cleaned_data["prop_keys"].split(",") if key.strip()]

    def clean(self):
        data = super().clean()
        if data.get("cadence") == "daily" and not data.get("time_of_day"):
            self.add_error("time_of_day", "A daily import needs a time of day.")
        return data


class EventJobForm(forms.ModelForm):
    class Meta:
        model = EventImportJob
        fields = ["label", "backfill_days", "keep_updated"]


@member_required
def source_list(request):
    projects = AmplitudeProject.objects.for_workspace(request.workspace).order_by("label")
    rows = [(project, quota.budget(project)) for project in projects]
    runs = (
        ImportRun.objects.filter(workspace=request.workspace)
        .select_related("cohort_job", "event_job")
        .order_by("-id")[:20]
    )
    form = None
    if request.membership.can_manage_credentials:
        form = ConnectAmplitudeForm(request.POST or None, workspace=request.workspace)
        if request.method == "POST" and form.is_valid():
            project = form.save()
            messages.success(request, f"Amplitude project “{project.label}” connected. Test the connection next.")
            return redirect("console:source", pk=project.pk)
    return render(request, "console/sources/list.html", {"rows": rows, "runs": runs, "form": form})


def _schedule(job) -> None:
    job.next_run_at = first_run_at(job, timezone.now()) if job.enabled else None
    job.save(update_fields=["next_run_at"])


@action_required
def source_detail(request, pk):
    project = get_object_or_404(AmplitudeProject.objects.for_workspace(request.workspace), pk=pk)
    cohorts, cohort_error = [], ""
    # Listing cohorts calls Amplitude with the project's keys: only ever on a POST (CSRF-protected;
    # the "Load cohorts" button posts form=cohorts), never on a GET a link or an image could trigger.
    if request.method == "POST":
        try:
            cohorts = list_project_cohorts(project)
        except AmplitudeError as exc:
            cohort_error = str(exc)
    which = request.POST.get("form")
    cohort_form = CohortJobForm(
        request.POST if which == "cohort" else None,
        cohorts=cohorts,
        initial={"timezone": request.workspace.timezone, "label": "Import cohorts"},
    )
    event_form = EventJobForm(request.POST if which == "event" else None, initial={"label": "Import events"})
    form = cohort_form if which == "cohort" else event_form if which == "event" else None
    if form is not None and form.is_valid():
        job = form.save(commit=False)
        job.workspace, job.project = request.workspace, project
        job.save()
        _schedule(job)
        messages.success(request, f"“{job.label}” saved; first run {job.next_run_at:%Y-%m-%d %H:%M} UTC.")
        return redirect("console:source", pk=project.pk)
    context = {
        "project": project,
        "budget": quota.budget(project),
        "cohorts": cohorts,
        "cohort_error": cohort_error,
        "cohort_form": cohort_form,
        "event_form": event_form,
        "cohort_jobs": project.cohort_jobs.order_by("label"),
        "event_jobs": project.event_jobs.order_by("label"),
        "runs": ImportRun.objects.filter(workspace=request.workspace)
        .filter(Q(cohort_job__project=project) | Q(event_job__project=project))
        .select_related("cohort_job", "event_job")
        .order_by("-id")[:25],
    }
    return render(request, "console/sources/detail.html", context)


@credentials_required
@require_POST  # an authenticated call to Amplitude: never on a GET
def test_connection(request, pk):
    project = get_object_or_404(AmplitudeProject.objects.for_workspace(request.workspace), pk=pk)
    try:
        cohorts, error = list_project_cohorts(project), ""
    except AmplitudeError as exc:
        cohorts, error = [], str(exc)
    return render(request, "console/sources/_test_connection.html", {"cohorts": cohorts, "error": error})


@action_required
def run_job_now(request, kind, pk):
    model = CohortImportJob if kind == "cohort" else EventImportJob
    job = get_object_or_404(model.objects.for_workspace(request.workspace), pk=pk)
    if request.method == "POST":
        try:
            run = create_run(job, trigger="manual")
        except quota.QuotaExceeded as exc:
            messages.error(request, str(exc))
        except RunStateError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Run #{run.pk} {run.get_status_display().lower()}.")
    return redirect("console:source", pk=job.project_id)


@action_required
def retry_import_run(request, pk):
    run = get_object_or_404(ImportRun.objects.filter(workspace=request.workspace), pk=pk)
    if request.method == "POST":
        try:
            new = retry_run(run)
            messages.success(request, f"Run #{run.pk} retried as #{new.pk}.")
        except (quota.QuotaExceeded, RunStateError) as exc:
            messages.error(request, str(exc))
    return redirect("console:sources")
