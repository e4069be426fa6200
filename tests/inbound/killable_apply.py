"""Run by test_worker_killed as a separate process: apply pending batches, but stop dead (sleep until
SIGKILLed) right after the ledger statement of the batch named in argv, inside its transaction."""

import os
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
django.setup()

from integrations.inbound import apply

workspace_id, stop_at_batch, ready_file = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
real_apply_changes = apply.apply_changes
real_apply_batch = apply.apply_batch
current = {}


def apply_batch(batch):
    current["id"] = batch.pk
    return real_apply_batch(batch)


def apply_changes(*args, **kwargs):
    result = real_apply_changes(*args, **kwargs)
    if current.get("id") == stop_at_batch:
        ready_file.write_text("ledger written, not committed")
        time.sleep(600)  # the parent kills us here
    return result


apply.apply_batch, apply.apply_changes = apply_batch, apply_changes
for workspace, segment in apply.pending_scopes():
    if workspace == workspace_id:
        apply.apply_pending(workspace, segment)
