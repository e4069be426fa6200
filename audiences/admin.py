"""Ops screens for people, identities, segments and the ledger. The ledger and current membership
are read-only here: only audiences.ledger writes them (docs/invariants.md, invariant 1)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from unfold.admin import ModelAdmin, TabularInline

from audiences.erasure import ErasureBusy, erase
from audiences.erasure_api import ERASER_ROLES
from audiences.models import (
    Erasure,
    Event,
    Identity,
    MembershipChange,
    Profile,
    ProfileMerge,
    Segment,
    SegmentMember,
)
from workspaces.models import Membership, Workspace


class ReadOnlyAdmin(ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class IdentityInline(TabularInline):
    model = Identity
    fields = ["kind", "value", "source", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Profile)
class ProfileAdmin(ModelAdmin):
    list_display = ["id", "workspace", "identity_summary", "updated_at"]
    list_filter = ["workspace"]
    search_fields = ["=id", "identities__value"]
    readonly_fields = ["workspace", "event_counts", "created_at", "updated_at"]
    inlines = [IdentityInline]
    actions = ["erase_selected"]

    def get_queryset(self, request) -> QuerySet[Profile]:
        return super().get_queryset(request).select_related("workspace").prefetch_related("identities")

    @admin.display(description="Identities")
    def identity_summary(self, obj: Profile) -> str:
        return ", ".join(f"{i.kind}={i.value}" for i in list(obj.identities.all())[:4])

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting a person must go through the ledger, not a cascade

    @admin.action(description="Erase selected people (for good; partners asked to delete)")
    def erase_selected(self, request, queryset) -> TemplateResponse | None:
        """Owners and ops of each person's workspace (or superusers) only; a confirmation page first."""
        profiles = list(queryset.select_related("workspace").prefetch_related("identities"))
        allowed = _eraser_workspaces(request.user)
        refused = [p for p in profiles if allowed is not None and p.workspace_id not in allowed]
        if refused:
            self.message_user(
                request,
                f"Only owners and ops of a person's workspace can erase them; nothing was erased "
                f"(not allowed for {', '.join(f'#{p.pk}' for p in refused)}).",
                messages.ERROR,
            )
            return None
        if request.POST.get("confirmed") != "yes":
            context = {**self.admin_site.each_context(request), "profiles": profiles, "title": "Erase people"}
            return TemplateResponse(request, "admin/audiences/profile/erase.html", context)
        for profile in profiles:
            try:
                result = erase(
                    profile.workspace,
                    profile_id=profile.pk,
                    user=request.user,
                    label=request.user.get_username(),
                    via="admin",
                )
            except (ErasureBusy, LookupError) as exc:
                self.message_user(request, f"Person #{profile.pk}: {exc}", messages.ERROR)
                continue
            outcomes = "; ".join(f"{d['destination']}: {d['outcome']} — {d['message']}" for d in result.destinations)
            self.message_user(
                request, f"Person #{profile.pk} erased (erasure {result.erasure_id}). {outcomes}", messages.SUCCESS
            )
        return None


def _eraser_workspaces(user) -> set[int] | None:
    """Workspaces whose people this admin user may erase; None = all (a superuser)."""
    if user.is_superuser:
        return None
    return set(Membership.objects.filter(user=user, role__in=ERASER_ROLES).values_list("workspace_id", flat=True))


@admin.register(Erasure)
class ErasureAdmin(ReadOnlyAdmin):
    """The audit trail: when, who asked, through which door, what went, what each partner answered."""

    list_display = ["id", "created_at", "workspace", "requested_by_label", "via", "finished_at"]
    list_filter = ["via", "workspace"]
    readonly_fields = ["workspace", "requested_by", "requested_by_label", "via", "counts", "destinations", "created_at"]


@admin.register(Identity)
class IdentityAdmin(ReadOnlyAdmin):
    list_display = ["value", "kind", "profile_id", "workspace", "source", "created_at"]
    list_filter = ["kind", "source", "workspace"]
    search_fields = ["=value", "=profile__id"]
    list_select_related = ["workspace"]


@admin.register(Segment)
class SegmentAdmin(ModelAdmin):
    list_display = ["name", "type", "external_id", "workspace", "size", "last_changed_at"]
    list_filter = ["type", "workspace", "partner_name"]
    search_fields = ["name", "=external_id"]
    readonly_fields = ["workspace", "type", "external_id", "size", "last_changed_at", "last_computed_at", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False  # segments come from pushes and imports


@admin.register(SegmentMember)
class SegmentMemberAdmin(ReadOnlyAdmin):
    list_display = ["segment", "profile_id", "added_at", "workspace"]
    list_filter = ["segment__workspace", "segment__type"]
    search_fields = ["=profile__id", "=profile__identities__value", "segment__name"]
    list_select_related = ["segment__workspace"]

    @admin.display(description="Workspace")
    def workspace(self, obj: SegmentMember) -> Workspace:
        return obj.segment.workspace


@admin.register(MembershipChange)
class MembershipChangeAdmin(ReadOnlyAdmin):
    """The ledger: append-only."""

    list_display = [
        "id",
        "occurred_at",
        "segment",
        "profile_id",
        "action",
        "source",
        "cause_type",
        "cause_id",
        "workspace",
    ]
    list_filter = ["action", "source", "cause_type", "workspace"]
    search_fields = ["=profile__id", "segment__name", "=segment__external_id"]
    list_select_related = ["segment", "workspace"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False  # the ledger is large; skip the COUNT(*)


@admin.register(ProfileMerge)
class ProfileMergeAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "created_at",
        "kept_profile_id",
        "removed_profile_id",
        "reason",
        "cause_type",
        "cause_id",
        "workspace",
    ]
    list_filter = ["workspace", "cause_type"]
    search_fields = ["=kept_profile__id", "=removed_profile_id", "reason"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "event_time", "profile_id", "user_id", "device_id", "source", "workspace"]
    list_filter = ["source", "workspace"]
    search_fields = ["=user_id", "=device_id", "=uuid", "=insert_id", "event_type"]
    show_full_result_count = False
