from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from integrations.crypto import UndecryptableSecret, rotate_token
from integrations.models import Authorization


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the newest key of FIELD_ENCRYPTION_KEYS. "
        "Rotation: prepend a new key, run this, then remove the old key."
    )

    def handle(self, *args, **options) -> None:
        rotated = 0
        with transaction.atomic():
            rows = (
                Authorization.objects.select_for_update()
                .exclude(secrets_ciphertext="")
                .only("pk", "secrets_ciphertext")
            )
            for auth in rows.iterator(chunk_size=500):
                try:
                    token = rotate_token(auth.secrets_ciphertext)
                except UndecryptableSecret:
                    raise CommandError(
                        f"Authorization {auth.pk} cannot be decrypted with any configured key; nothing was changed. "
                        "Put back the key it was encrypted with and run again."
                    ) from None
                Authorization.objects.filter(pk=auth.pk).update(secrets_ciphertext=token)
                rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} authorization(s) under the newest key.")
