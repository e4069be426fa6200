"""Sources: connect an Amplitude project, its cohort and event imports, runs (docs/sources.md)."""

import zoneinfo
from datetime import UTC, datetime

from django import forms
from django.contrib import messages
from django.db import transaction
from django.db.models import BigIntegerField, DateTimeField, Max, Q, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.safe_json import string_problem
from console import pending, timefmt
from console.access import action_required, credentials_required, member_required, setup_page
from console.asking import ask_context
from console.paging import keyset_page
from integrations.models import Authorization
from integrations.outbound import operator_allowed_url, validate_outbound_url
from integrations.sources import quota
from integrations.sources.actions import create_run, retry_run
from integrations.sources.amplitude import AmplitudeError
from integrations.sources.cohorts import fetch_project_cohorts, list_project_cohorts, remember_listing
from integrations.sources.models import (
    OVERRIDE_REFUSED,
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


class AmplitudeProjectForm(forms.Form):
    """Connect a project (`instance` None) or change one. Its keys are write-only: blank keeps the
    saved ones, except after a change of region or base URL, which needs them entered again
    (integrations.credential_hosts). `kept`: keys typed before a failed test (console.pending)."""

    label = forms.CharField(max_length=120, help_text="A name for this project in the console.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    api_key = forms.CharField(label="API Key", required=False, widget=forms.PasswordInput(render_value=False))
    secret_key = forms.CharField(label="API Secret", required=False, widget=forms.PasswordInput(render_value=False))
    region = forms.ChoiceField(choices=Region.choices, initial=Region.US, help_text="Where the project's data lives.")
    base_url = forms.URLField(
        required=False,
        label="Base URL override (operators only)",
        assume_scheme="https",
        validators=[validate_outbound_url],
        help_text="Blank: the region's Amplitude host. Only a host the operator allowed (a sandbox, a proxy).",
    )

    def __init__(self, *args, workspace, instance: AmplitudeProject | None = None, kept: dict | None = None, **kw):
        if instance is not None:
            kw.setdefault(
                "initial",
                {
                    "label": instance.label,
                    "description": instance.authorization.description,
                    "region": instance.region,
                    "base_url": instance.base_url,
                },
            )
        super().__init__(*args, **kw)
        self.workspace, self.instance, self.kept = workspace, instance, kept or {}
        for name in ("api_key", "secret_key"):
            if instance is not None:
                self.fields[name].widget.attrs["placeholder"] = "saved: leave blank to keep"
            if self.kept.get(name):
                self.fields[name].widget.attrs["placeholder"] = "kept from your last try: leave blank to use it"

    def clean_label(self) -> str:
        label = self.cleaned_data["label"]
        projects = AmplitudeProject.objects.filter(workspace=self.workspace, label=label)
        authorizations = Authorization.objects.filter(workspace=self.workspace, label=label)
        if self.instance is not None:
            projects = projects.exclude(pk=self.instance.pk)
            authorizations = authorizations.exclude(pk=self.instance.authorization_id)
        if projects.exists() or authorizations.exists():
            raise forms.ValidationError("A project or authorization with this label already exists.")
        return label

    def clean_base_url(self) -> str:
        value = self.cleaned_data["base_url"]
        if value and not operator_allowed_url(value):
            raise forms.ValidationError(OVERRIDE_REFUSED)
        return value

    def clean(self) -> dict:
        data = super().clean()
        for name in ("api_key", "secret_key"):
            data[name] = data.get(name) or self.kept.get(name, "")
        missing = [self.fields[n].label for n in ("api_key", "secret_key") if not data.get(n)]
        if self.instance is None and missing:
            for name in ("api_key", "secret_key"):
                if not data.get(name):
                    self.add_error(name, "Enter it: Amplitude → Settings → Projects.")
        elif self.instance is not None and self.host_changed and missing:
            for name in ("api_key", "secret_key"):
                if not data.get(name):
                    self.add_error(name, "Enter it again: the region or base URL changed.")
        return data

    @property
    def host_changed(self) -> bool:
        data = self.cleaned_data
        host = AmplitudeProject(region=data.get("region") or Region.US, base_url=data.get("base_url") or "")
        return self.instance is not None and host.api_base_url != self.instance.api_base_url

    @property
    def new_keys(self) -> dict:
        return {n: self.cleaned_data[n] for n in ("api_key", "secret_key") if self.cleaned_data.get(n)}

    def candidate(self) -> AmplitudeProject:
        """The project as it would be saved, with the authorization it would use (not saved yet)."""
        data, instance = self.cleaned_data, self.instance
        if instance is not None:  # a fresh copy: a failed test leaves the shown instance as it was
            project = AmplitudeProject.objects.select_related("authorization").get(pk=instance.pk)
            auth = project.authorization
            shared = auth.amplitude_projects.exclude(pk=instance.pk).exists() or auth.destinations.exists()
        else:
            project, auth, shared = AmplitudeProject(workspace=self.workspace), None, False
        if auth is None or (self.new_keys and shared):  # a new authorization: the project's own
            auth, shared = Authorization(workspace=self.workspace, provider="amplitude"), False
            auth.label = _free_label(self.workspace, data["label"])
        if not shared:
            auth.label, auth.description = data["label"] if auth.pk else auth.label, data["description"]
        if self.host_changed:
            auth.secrets_ciphertext = ""  # nothing of the old host's keys is kept
        auth.set_secrets(self.new_keys)
        project.label, project.region, project.base_url = data["label"], data["region"], data["base_url"]
        project.authorization = auth
        return project

    @transaction.atomic
    def save(self, project: AmplitudeProject) -> AmplitudeProject:
        project.authorization.save()
        project.save()
        return project


def _free_label(workspace, label: str) -> str:
    """`label`, or `label (2)`, … when an authorization has it already."""
    taken = set(
        Authorization.objects.filter(workspace=workspace, label__startswith=label).values_list("label", flat=True)
    )
    return next(
        candidate for n in range(1, len(taken) + 2) if (candidate := label if n == 1 else f"{label} ({n})") not in taken
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

    def clean_cohort_ids(self) -> list[str]:
        # A cohort ticked on the page shown is posted twice (its box and its chip): once is enough.
        return list(dict.fromkeys(self.cleaned_data["cohort_ids"]))

    def clean_prop_keys(self) -> list[str]:
        return [key.strip() for key in self.cleaned_data["prop_keys"].split(",") if key.strip()]

    def clean(self) -> dict:
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
def source_list(request) -> HttpResponse:
    if _runs_only(request):
        runs = import_runs(request, ImportRun.objects.filter(workspace=request.workspace))
        return render(request, "console/sources/_runs_live.html", runs)
    projects = AmplitudeProject.objects.for_workspace(request.workspace).order_by("label")
    rows = [(project, quota.budget(project)) for project in projects]
    readonly = not request.membership.can_manage_credentials
    tested = {}
    if readonly:  # what connecting asks for, shown but disabled, with "ask an owner or ops"
        if request.method == "POST":
            return render(request, "console/forbidden.html", {"reason": CREDENTIALS_ONLY}, status=403)
        form = AmplitudeProjectForm(workspace=request.workspace)
    else:
        token = request.POST.get("pending", "")
        kept = pending.take(request, token) if request.method == "POST" else {}
        form = AmplitudeProjectForm(request.POST or None, workspace=request.workspace, kept=kept)
        if request.method == "POST" and form.is_valid():
            project, tested = _test_and_save(request, form, token)
            if project is not None:
                return redirect("console:source", pk=project.pk)
    why = "Connecting a project needs its API key and secret."
    context = {
        **tested,
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
def source_detail(request, pk) -> HttpResponse:
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


def _test_and_save(request, form: AmplitudeProjectForm, token: str) -> tuple[AmplitudeProject | None, dict]:
    """Test the keys against Amplitude (through the outgoing-request policy) before saving; a failed
    test saves only on "Save anyway". Returns the saved project, or what the form shows instead."""
    project = form.candidate()
    must_test = form.instance is None or form.host_changed or bool(form.new_keys)
    cohorts, error = [], ""
    if must_test:
        try:
            cohorts = fetch_project_cohorts(project)
        except AmplitudeError as exc:
            error = str(exc)
    if error and not request.POST.get("save_anyway"):
        return None, {"test_failed": error, "pending": pending.keep(request, form.new_keys)}
    connected = form.instance is None
    project = form.save(project)
    pending.drop(request, token)
    if must_test and not error:
        remember_listing(project, cohorts)  # the picker has them at once
        listed = f"Amplitude lists {len(cohorts)} cohort{'s' if len(cohorts) != 1 else ''}"
        messages.success(request, f"“{project.label}” {'connected' if connected else 'saved'}: {listed}.")
    elif error:
        messages.warning(request, f"“{project.label}” saved without a working connection: {error}")
    else:
        messages.success(request, f"“{project.label}” saved.")
    return project, {}


@setup_page
def source_edit(request, pk) -> HttpResponse:
    """Owners and ops change a project (label, region, host, keys); the others read it, disabled."""
    project = get_object_or_404(
        AmplitudeProject.objects.for_workspace(request.workspace).select_related("authorization"), pk=pk
    )
    readonly = not request.membership.can_manage_credentials
    tested = {}
    token = request.POST.get("pending", "") if request.method == "POST" else ""
    kept = pending.take(request, token) if token else {}
    form = AmplitudeProjectForm(
        request.POST if request.method == "POST" else None, workspace=request.workspace, instance=project, kept=kept
    )
    if request.method == "POST" and form.is_valid():
        saved, tested = _test_and_save(request, form, token)
        if saved is not None:
            return redirect("console:source", pk=saved.pk)
    why = "Changing a project touches its API key and secret."
    context = {
        **tested,
        "project": project,
        "form": form,
        "readonly": readonly,
        **(ask_context(request, SetupTopic.AMPLITUDE, why=why) if readonly else {}),
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "console/sources/edit.html", context, status=status)


@credentials_required
def source_delete(request, pk) -> HttpResponse:
    project = get_object_or_404(AmplitudeProject.objects.for_workspace(request.workspace), pk=pk)
    active = ImportRun.objects.filter(
        Q(cohort_job__project=project) | Q(event_job__project=project), status__in=ACTIVE
    ).exists()
    if request.method == "POST":
        if active:
            messages.error(request, "An import of this project is running; delete it after the run ends.")
            return redirect("console:source", pk=pk)
        label, auth = project.label, project.authorization
        with transaction.atomic():
            project.delete()  # its jobs, runs, cohort listing and quota go with it; imported segments stay
            if not auth.amplitude_projects.exists() and not auth.destinations.exists():
                auth.delete()  # its keys served only this project
        messages.success(request, f"Amplitude project “{label}” and its import jobs deleted.")
        return redirect("console:sources")
    return render(request, "console/sources/delete.html", {"project": project, "active": active})


@credentials_required
@require_POST  # an authenticated call to Amplitude: never on a GET
def test_connection(request, pk) -> HttpResponse:
    project = get_object_or_404(AmplitudeProject.objects.for_workspace(request.workspace), pk=pk)
    try:
        cohorts, error = list_project_cohorts(project), ""
    except AmplitudeError as exc:
        cohorts, error = [], str(exc)
    return render(request, "console/sources/_test_connection.html", {"cohorts": cohorts, "error": error})


@action_required
def run_job_now(request, kind, pk) -> HttpResponseRedirect:
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
            if run.status == RunStatus.SKIPPED:  # say why (a run still going, a one-time job that ran)
                messages.error(request, f"Run #{run.pk} skipped. {run.error.removeprefix('Skipped: ')}")
            else:
                messages.success(request, f"Run #{run.pk} {run.get_status_display().lower()}.")
    return redirect("console:source", pk=job.project_id)


@action_required
def retry_import_run(request, pk) -> HttpResponseRedirect:
    run = get_object_or_404(ImportRun.objects.filter(workspace=request.workspace), pk=pk)
    if request.method == "POST":
        try:
            new = retry_run(run)
            messages.success(request, f"Run #{run.pk} retried as #{new.pk}.")
        except (quota.QuotaExceeded, RunStateError) as exc:
            messages.error(request, str(exc))
    return redirect("console:sources")
