"""A management key lives only as long as its owner may hold one.

Its owner is the person who created it (`created_by`). The key is revoked, with the reason saved,
when that person is deactivated or deleted, leaves the key's workspace, or stops being an owner or
ops there. Signals do it as it happens; `owner_gone()` checks again on every use, so a change made
behind the signals' back (a queryset update, a raw SQL fix) still takes the key's rights away.
Inbound keys are not touched: they belong to the sender (Amplitude, an SDK), not to a person.
"""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from integrations.models import ApiKey, ApiKeyScope
from workspaces.models import CREDENTIAL_ROLES, Membership

DEACTIVATED = "its owner was deactivated"
DELETED = "its owner was deleted"
LEFT = "its owner left the workspace"
DEMOTED = "its owner is no longer an owner or ops of the workspace"


def owner_gone(key: ApiKey) -> str:
    """Why `key` may no longer be used because of its owner, or "" while the owner still qualifies."""
    if key.scope != ApiKeyScope.MANAGEMENT or key.created_by_id is None:
        return ""
    owner = key.created_by
    if not owner.is_active:
        return DEACTIVATED
    role = Membership.objects.filter(user_id=owner.pk, workspace_id=key.workspace_id).values_list("role", flat=True)
    role = role.first()
    if role is None:
        return LEFT
    return "" if role in CREDENTIAL_ROLES else DEMOTED


def revoke_keys_of(user_id: int, reason: str, workspace_id: int | None = None) -> int:
    keys = ApiKey.objects.active().filter(scope=ApiKeyScope.MANAGEMENT, created_by_id=user_id)
    if workspace_id is not None:
        keys = keys.filter(workspace_id=workspace_id)
    count = 0
    for key in keys:
        key.revoke(reason)
        count += 1
    return count


@receiver(post_save, sender=get_user_model(), dispatch_uid="api_keys_follow_user_active")
def _user_saved(sender, instance, **kwargs) -> None:
    if not instance.is_active:
        revoke_keys_of(instance.pk, DEACTIVATED)


@receiver(pre_delete, sender=get_user_model(), dispatch_uid="api_keys_follow_user_deleted")
def _user_deleted(sender, instance, **kwargs) -> None:
    revoke_keys_of(instance.pk, DELETED)  # before created_by is set to NULL and the link is lost


@receiver(post_save, sender=Membership, dispatch_uid="api_keys_follow_membership_role")
def _membership_saved(sender, instance, **kwargs) -> None:
    if instance.role not in CREDENTIAL_ROLES:
        revoke_keys_of(instance.user_id, DEMOTED, instance.workspace_id)


@receiver(post_delete, sender=Membership, dispatch_uid="api_keys_follow_membership_deleted")
def _membership_deleted(sender, instance, **kwargs) -> None:
    revoke_keys_of(instance.user_id, LEFT, instance.workspace_id)
