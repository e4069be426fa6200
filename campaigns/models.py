"""Campaigns: a segment + a behaviour + a channel + content + a schedule, sent through CleverTap.

README — the public functions (what the console, the API, the admin and the demo call):

    campaigns.validation
        validate_campaign(data: dict, *, workspace) -> dict[str, list[str]]
            The one validator of a campaign's fields (form, API serializer and admin form all call it):
            {field: [reasons]}, empty when valid. Refuses the Partner Sync trigger (kind=live) on the
            SDK-rendered channels (reason PARTNER_SYNC_NOT_SDK: "Partner Sync is not an SDK event"),
            and any channel CleverTap's API cannot create (Channel.api_creatable).
        channel_choices() -> list[(value, label, api_creatable: bool, live_allowed: bool)]

    campaigns.status
        set_status(campaign, status, *, reason="", expect=None) -> bool
            The ONLY writer of Campaign.status (a conditional UPDATE; False when the campaign was not
            in `expect` any more). Allowed moves in ALLOWED.

    campaigns.service
        create_campaign(workspace, *, user=None, **fields) -> Campaign      (draft; raises CampaignInvalid)
        update_campaign(campaign, **fields) -> Campaign                      (draft only; a new kind, segment,
                                                                             destination or channel clears the reach)
        delete_campaign(campaign) -> None                                    (draft only)
        estimate(campaign) -> Estimate(reach: int | None, message: str)      (CleverTap estimate_only)
        launch(campaign, *, user=None) -> Campaign                           (raises CampaignRefused)
        stop(campaign, *, user=None) -> Campaign                             (calls Stop Campaign)
        progress(campaign) -> dict(enrolled, pending, sending, sent, failed, unknown, skipped)
        launch_readiness(campaign) -> str | None   ("" / None = ready; else what to do first)

    The person page's timeline (console, issue 18's pages) reads Enrollment rows directly: each
    names its ledger change (change_id, change_at), its status and sent_at.

    Models: Campaign (with the module's Kind, Channel, Status, When, Repeat, Reentry), Launch (one
    CleverTap campaign we created: a past-behaviour occurrence), SendBatch (one targeted send),
    Enrollment (EnrollmentStatus; get_status_display() reads "Unknown — checking" for a send whose
    fate is being looked up).

Status changes only through campaigns.status.set_status (docs/campaigns.md).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from audiences.models import MembershipChange, Profile, Segment
from integrations.delivery.models import Destination
from workspaces.models import Workspace, WorkspaceScopedQuerySet

PARTNER_SYNC_NOT_SDK = "Partner Sync is not an SDK event"


class Kind(models.TextChoices):
    PAST = "past", "Past behaviour (segment members now)"
    LIVE = "live", "Live behaviour (Partner Sync, Action = Added)"


class Channel(models.TextChoices):
    PUSH = "push", "Mobile push"
    WEBPUSH = "webpush", "Web push"
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"
    IN_APP = "in_app", "In-App message"
    WEB_POPUP = "web_popup", "Web Popup"
    WEB_EXIT_INTENT = "web_exit_intent", "Web Exit Intent"
    APP_INBOX = "app_inbox", "App Inbox"
    NATIVE_DISPLAY = "native_display", "Native Display"


# Rendered by CleverTap's SDK inside the app or page when the SDK raises an event: a server-side
# event such as Partner Sync never reaches the SDK, so these cannot be triggered by it (the seed's
# "Campaign Exceptions for Partner Sync Event"), and CleverTap's campaign API cannot create them.
SDK_CHANNELS = frozenset(
    {Channel.IN_APP, Channel.WEB_POPUP, Channel.WEB_EXIT_INTENT, Channel.APP_INBOX, Channel.NATIVE_DISPLAY}
)
# CleverTap's `target_mode` (create) and send path (targeted send) per API-creatable channel.
API_TARGET_MODE = {
    Channel.PUSH: "push",
    Channel.WEBPUSH: "webpush",
    Channel.EMAIL: "email",
    Channel.SMS: "sms",
    Channel.WHATSAPP: "whatsapp",
}


class Status(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"


class When(models.TextChoices):
    NOW = "now", "Now"
    AT = "at", "At a time (the workspace's time zone)"


class Repeat(models.TextChoices):
    ONCE = "once", "Once"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"


class Reentry(models.TextChoices):
    NEVER = "never", "Never: a person enters once"
    AFTER_REMOVAL = "after_removal", "Again after being removed from the segment and added back"


class Campaign(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="campaigns")
    destination = models.ForeignKey(
        Destination, on_delete=models.PROTECT, related_name="campaigns", limit_choices_to={"kind": "clevertap"}
    )
    channel = models.CharField(max_length=20, choices=Channel.choices)
    content = models.JSONField(default=dict, blank=True, help_text='{"title": .., "body": .., "subject": ..}')
    when = models.CharField(max_length=4, choices=When.choices, default=When.NOW)
    send_at = models.DateTimeField(null=True, blank=True, help_text="First send (stored in UTC).")
    repeat = models.CharField(max_length=8, choices=Repeat.choices, default=Repeat.ONCE)
    reentry = models.CharField(max_length=16, choices=Reentry.choices, default=Reentry.NEVER)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, editable=False)
    status_reason = models.TextField(blank=True, editable=False)
    status_changed_at = models.DateTimeField(null=True, blank=True, editable=False)

    reach = models.BigIntegerField(null=True, blank=True, editable=False, help_text="CleverTap's estimate.")
    reach_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Long waits live in the database (invariant 5): the scheduler tick launches what is due.
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)
    # Live behaviour: only ledger changes after launch enroll, and sync runs are read with a cursor.
    start_after_change_id = models.BigIntegerField(null=True, blank=True, editable=False)
    enrolled_through_run_id = models.BigIntegerField(default=0, editable=False)
    # CleverTap's report figures of the campaign's launches (Get Campaign Report), refreshed by beat.
    report = models.JSONField(default=dict, blank=True, editable=False)
    report_refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_activity_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["workspace", "-id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="campaign_name_unique")]
        indexes = [models.Index(fields=["segment", "status"], name="campaign_segment_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def marker(self) -> str:
        """Stable tag in every CleverTap campaign name we create: how a lost answer is looked up."""
        return f"cc{self.workspace_id}-{self.pk}"

    @property
    def api_creatable(self) -> bool:
        return self.channel in API_TARGET_MODE


class PartnerState(models.TextChoices):
    """Where one create or send call stands. UNKNOWN: sent, no answer (timeout, 5xx, dropped):
    never re-sent blind; looked up by its marker first."""

    PENDING = "pending", "Not sent yet"
    SENDING = "sending", "Sending"
    UNKNOWN = "unknown", "Unknown — checking"
    ACCEPTED = "accepted", "Accepted by CleverTap"
    FAILED = "failed", "Refused by CleverTap"
    ABANDONED = "abandoned", "Not sent (campaign stopped)"


class Launch(models.Model):
    """One CleverTap campaign we create (past behaviour): an occurrence of the schedule."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="launches")
    occurrence = models.CharField(max_length=32, help_text="The scheduled time it stands for (UTC, ISO).")
    name = models.CharField(max_length=255, help_text="The name given to CleverTap: carries the marker.")
    state = models.CharField(max_length=10, choices=PartnerState.choices, default=PartnerState.PENDING)
    partner_id = models.CharField(max_length=64, blank=True, help_text="CleverTap's campaign id.")
    attempts = models.SmallIntegerField(default=0)
    answer = models.CharField(max_length=500, blank=True, help_text="Parsed summary of CleverTap's answer.")
    answer_raw = models.TextField(blank=True, help_text="Raw start of the answer: ops only (admin).")
    report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "occurrence"], name="launch_occurrence_unique")]


class SendBatch(models.Model):
    """One targeted send (live behaviour): up to the batch size of enrolled people in one call."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=255, help_text="The name given to CleverTap: carries the marker.")
    state = models.CharField(max_length=10, choices=PartnerState.choices, default=PartnerState.SENDING)
    size = models.IntegerField(default=0)
    partner_id = models.CharField(max_length=64, blank=True)
    attempts = models.SmallIntegerField(default=0)
    answer = models.CharField(max_length=500, blank=True, help_text="Parsed summary of CleverTap's answer.")
    answer_raw = models.TextField(blank=True, help_text="Raw start of the answer: ops only (admin).")
    created_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["state", "next_check_at"], name="sendbatch_state_check")]


class EnrollmentStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Sending"
    UNKNOWN = "unknown", "Unknown — checking"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Not sent (campaign stopped)"
    IN_CAMPAIGN = "in_campaign", "In CleverTap's campaign audience"  # reserved: past behaviour enrolls nobody yet


class Enrollment(models.Model):
    """A person entering a campaign because of one ledger change: unique per (campaign, person,
    change), so no replay, redelivered task or second worker can enroll (and message) anyone twice."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="enrollments", db_index=False)
    profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, related_name="enrollments", db_constraint=False, db_index=False
    )
    change = models.ForeignKey(
        MembershipChange, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    change_at = models.DateTimeField(help_text="When the ledger change happened (copied for the timeline).")
    launch = models.ForeignKey(Launch, null=True, blank=True, on_delete=models.SET_NULL, related_name="enrollments")
    # Who CleverTap accepted in the sync (the delivery row's user id or device id).
    to_kind = models.CharField(max_length=10, help_text="identity or objectId")
    to_value = models.CharField(max_length=512)
    status = models.CharField(max_length=12, choices=EnrollmentStatus.choices, default=EnrollmentStatus.PENDING)
    batch = models.ForeignKey(
        SendBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="enrollments", db_index=False
    )
    answer = models.CharField(max_length=500, blank=True, help_text="Parsed summary of CleverTap's answer.")
    answer_raw = models.TextField(blank=True, help_text="Raw start of the answer: ops only (admin).")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "profile", "change"], name="enrollment_once_per_change")
        ]
        # The unique (campaign, profile, change) index also serves "has this person entered before".
        indexes = [
            models.Index(fields=["profile", "id"], name="enrollment_profile"),
            models.Index(fields=["batch"], condition=Q(batch__isnull=False), name="enrollment_batch"),
            models.Index(fields=["campaign", "id"], condition=Q(status="pending"), name="enrollment_pending"),
        ]

    def __str__(self) -> str:
        return f"enrollment {self.pk} of profile {self.profile_id} in {self.campaign_id}"
