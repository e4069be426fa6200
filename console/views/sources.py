"""Sources: connect an Amplitude project, its cohort and event imports, runs (docs/sources.md)."""

import zoneinfo
from datetime import UTC, datetime

from django import forms
from django.contrib import messages
from django.db import transaction
from django.db.models import BigIntegerField, DateTimeField, Max, Q, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.safe_json import string_problem
from console import timefmt
from console.access import action_required, credentials_required, member_required
from console.asking import ask_context
from console.paging import keyset_page
from integrations.models import Authorization
from integrations.outbound import validate_outbound_url
from integrations.sources import quota
from integrations.sources.actions import create_run, retry_run
from integrations.sources.amplitude import AmplitudeError
from integrations.sources.cohorts import list_project_cohorts
from integrations.sources.models import (
    AmplitudeCohort,
    AmplitudeProject,
    Cadence,
    CohortImportJob,
    EventImportJob,
    ImportRun,
    Region,
    RunStatus,
)
from integrations.sources.runs import RunStateError
from integrations.sources.scheduling import start_new_job
from workspaces.models import SetupTopic

TIMEZONES = sorted(zoneinfo.available_timezones())
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
CREDENTIALS_ONLY = "Only owners and ops can see or change credentials and API keys."


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
    # Picked in the cohort picker (search, sort, pages) of the project's listed cohorts.
    cohort_ids = forms.MultipleChoiceField(
        required=False,
        widget=forms.MultipleHiddenInput,
        label="Cohorts",
        help_text="None chosen = import every cohort.",
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
        help_texts = {
            "time_of_day": "Daily imports: the time of day, in the time zone below.",
            "cohort_names_field": "Profile property that lists, by cohort name, the Amplitude cohorts a person is in; "
            "blank = do not store it.",
        }

    def __init__(self, *args, cohorts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cohort_ids"].choices = [(c.cohort_id, c.name) for c in cohorts]
        self.fields["cohort_ids"].error_messages["invalid_choice"] = (
            "%(value)s is not a cohort of this project as Amplitude last listed it: load the cohorts again."
        )

    def clean_cohort_ids(self):
        # A cohort ticked on the page shown is posted twice (its box and its chip): once is enough.
        return list(dict.fromkeys(self.cleaned_data["cohort_ids"]))

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


RUNS_SHOWN = 25
PICKER_PAGE = 25
# The picker's orders: (label, keyset order). Unknown sizes and dates sort last.
PICKER_SORTS = {
    "name": ("name", ("name", "id")),
    "size": ("size, largest first", ("-size_key", "-id")),
    "computed": ("last computed, newest first", ("-computed_key", "-id")),
}
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def _runs_only(request) -> bool:
    """An htmx refresh of the runs table (console/sources/_runs_live.html): answered with the table alone."""
    return bool(request.htmx) and request.htmx.target == "import-runs"


def import_runs(request, runs) -> dict:
    """A page of import runs, newest first, and whether one is queued or running (the table then
    refreshes itself every 2 s until none is)."""
    page = keyset_page(
        runs.select_related("cohort_job", "event_job"), ("-id",), request.GET, prefix="runs_", size=RUNS_SHOWN
    )
    return {"runs": page, "runs_active": any(run.status in ACTIVE for run in page.rows)}


@member_required
def source_list(request):
    if _runs_only(request):
        runs = import_runs(request, ImportRun.objects.filter(workspace=request.workspace))
        return render(request, "console/sources/_runs_live.html", runs)
    projects = AmplitudeProject.objects.for_workspace(request.workspace).order_by("label")
    rows = [(project, quota.budget(project)) for project in projects]
    readonly = not request.membership.can_manage_credentials
    if readonly:  # what connecting asks for, shown but disabled, with "ask an owner or ops"
        if request.method == "POST":
            return render(request, "console/forbidden.html", {"reason": CREDENTIALS_ONLY}, status=403)
        form = ConnectAmplitudeForm(workspace=request.workspace)
    else:
        form = ConnectAmplitudeForm(request.POST or None, workspace=request.workspace)
        if request.method == "POST" and form.is_valid():
            project = form.save()
            messages.success(request, f"Amplitude project “{project.label}” connected. Test the connection next.")
            return redirect("console:source", pk=project.pk)
    why = "Connecting a project needs its API key and secret."
    context = {
        "rows": rows,
        "form": form,
        "readonly": readonly,
        **(ask_context(request, SetupTopic.AMPLITUDE, why=why) if readonly else {}),
        **import_runs(request, ImportRun.objects.filter(workspace=request.workspace)),
    }
    return render(request, "console/sources/list.html", context)


def cohort_picker(project: AmplitudeProject, params) -> dict:
    """The project's cohorts as Amplitude last listed them: searched by name or id, sorted by name,
    size or last computed, a page at a time."""
    cohorts = AmplitudeCohort.objects.filter(project=project).annotate(
        size_key=Coalesce("size", Value(-1), output_field=BigIntegerField()),
        computed_key=Coalesce("last_computed", Value(NEVER), output_field=DateTimeField()),
    )
    query = params.get("cq", "").strip()
    if query and not string_problem(query):
        cohorts = cohorts.filter(Q(name__icontains=query) | Q(cohort_id=query))
    sort = params.get("csort", "")
    sort = sort if sort in PICKER_SORTS else "name"
    return {
        "picker": keyset_page(cohorts, PICKER_SORTS[sort][1], params, prefix="cohorts_", size=PICKER_PAGE),
        "picker_query": query,
        "picker_sort": sort,
        "picker_sorts": [(key, label) for key, (label, _) in PICKER_SORTS.items()],
        "picker_listed_at": AmplitudeCohort.objects.filter(project=project).aggregate(at=Max("listed_at"))["at"],
    }


def _started(request, job) -> None:
    """Save-time start of a new import job (integrations.sources.scheduling.start_new_job), said in words."""
    try:
        run = start_new_job(job)
    except quota.QuotaExceeded as exc:
        messages.error(request, f"“{job.label}” saved, but it cannot start: {exc}")
        return
    if run is not None:
        messages.success(request, f"“{job.label}” saved; run #{run.pk} is queued and starts within a minute.")
    elif job.next_run_at is not None:
        messages.success(request, f"“{job.label}” saved; its first run starts {timefmt.when(job.next_run_at)}.")
    else:
        messages.success(request, f"“{job.label}” saved (not enabled: it does not run by itself).")


@action_required
def source_detail(request, pk):
    project = get_object_or_404(AmplitudeProject.objects.for_workspace(request.workspace), pk=pk)
    runs = ImportRun.objects.filter(workspace=request.workspace).filter(
        Q(cohort_job__project=project) | Q(event_job__project=project)
    )
    if _runs_only(request) and request.method == "GET":
        return render(request, "console/sources/_runs_live.html", import_runs(request, runs))
    cohort_error = ""
    which = request.POST.get("form")
    # Listing cohorts calls Amplitude with the project's keys: only ever on a POST (CSRF-protected;
    # the "Load cohorts" button posts form=cohorts), never on a GET a link or an image could trigger.
    if which == "cohorts":
        try:
            listed = list_project_cohorts(project)
        except AmplitudeError as exc:
            cohort_error = str(exc)
        else:
            messages.success(
                request, f"Amplitude lists {len(listed)} cohort{'s' if len(listed) != 1 else ''} in this project."
            )
            return redirect(reverse("console:source", args=[project.pk]) + "#cohort-form")
    known = list(AmplitudeCohort.objects.filter(project=project).only("cohort_id", "name"))
    cohort_form = CohortJobForm(
        request.POST if which == "cohort" else None,
        cohorts=known,
        initial={"timezone": request.workspace.timezone, "label": "Import cohorts"},
    )
    event_form = EventJobForm(request.POST if which == "event" else None, initial={"label": "Import events"})
    form = cohort_form if which == "cohort" else event_form if which == "event" else None
    if form is not None and form.is_valid():
        job = form.save(commit=False)
        job.workspace, job.project = request.workspace, project
        job.save()
        _started(request, job)
        return redirect("console:source", pk=project.pk)
    names = {cohort.cohort_id: cohort.name for cohort in known}
    cohort_jobs = list(project.cohort_jobs.order_by("label"))
    for job in cohort_jobs:  # cohorts by name where the listing knows them
        job.cohort_labels = [names.get(cohort_id) or cohort_id for cohort_id in job.cohort_ids]
    chosen = [(cohort_id, names.get(cohort_id, cohort_id)) for cohort_id in (cohort_form["cohort_ids"].value() or [])]
    context = {
        "project": project,
        "budget": quota.budget(project),
        "cohort_error": cohort_error,
        "cohort_form": cohort_form,
        "event_form": event_form,
        "chosen_cohorts": chosen,
        "cohort_names": names,
        "cohort_jobs": cohort_jobs,
        "event_jobs": project.event_jobs.order_by("label"),
        "starts_later": [Cadence.DAILY.value],
        **cohort_picker(project, request.GET),
        **import_runs(request, runs),
    }
    return render(request, "console/sources/detail.html", context, status=400 if form is not None else 200)


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
