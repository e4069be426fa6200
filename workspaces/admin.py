from axes.models import AccessAttempt
from axes.utils import reset as reset_sign_in_failures
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from unfold.admin import ModelAdmin, TabularInline
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from workspaces.models import Membership, SetupRequest, Workspace


class MembershipInline(TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(ModelAdmin):
    list_display = ["name", "slug", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]


# Re-register people with the unfold theme so the whole admin looks and works alike.

admin.site.unregister(User)
admin.site.unregister(Group)


class UserMembershipInline(TabularInline):
    model = Membership
    extra = 0
    fk_name = "user"


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    inlines = [UserMembershipInline]
    actions = ["unlock_sign_in"]

    @admin.action(description="Unlock sign-in (forget failed attempts)", permissions=["change"])
    def unlock_sign_in(self, request, queryset) -> None:
        count = sum(reset_sign_in_failures(username=user.get_username()) for user in queryset)
        self.message_user(request, f"{count} failed-attempt record(s) removed.", messages.SUCCESS)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass


@admin.register(AccessAttempt)
class SignInFailureAdmin(ModelAdmin):
    """Failed sign-ins counted by django-axes. Deleting rows unlocks: an account (by username) or an
    address (by IP) is locked while its rows add up to LOGIN_FAILURE_LIMIT within the cool-off."""

    list_display = ["username", "ip_address", "failures_since_start", "attempt_time", "path_info"]
    list_filter = ["path_info"]
    search_fields = ["username", "ip_address"]
    readonly_fields = [
        "username",
        "ip_address",
        "user_agent",
        "path_info",
        "failures_since_start",
        "attempt_time",
        "get_data",
        "post_data",
        "http_accept",
    ]
    actions = ["unlock"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Unlock: forget these failed attempts", permissions=["delete"])
    def unlock(self, request, queryset) -> None:
        count, _ = queryset.delete()
        self.message_user(request, f"{count} record(s) removed; those accounts and addresses may sign in.")


@admin.register(SetupRequest)
class SetupRequestAdmin(ModelAdmin):
    """What marketers asked the owners and ops to set up (the console shows the open ones on their dashboard)."""

    list_display = ["what", "requested_by", "workspace", "created_at", "done_at", "done_by"]
    list_filter = ["topic", "workspace"]
    readonly_fields = ["workspace", "requested_by", "topic", "detail", "path", "created_at"]
