"""What each pruning removed (retention.prune): ops read it in the admin with the table sizes."""

from django.db import models


class PruneRun(models.Model):
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    dry_run = models.BooleanField(default=False, help_text="Counted what would go; removed nothing.")
    trigger = models.CharField(max_length=16, default="schedule", help_text="schedule or command")
    removed = models.JSONField(default=dict, blank=True, help_text="Rows (or bodies) per category and table.")
    dropped_partitions = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "pruning"

    def __str__(self) -> str:
        # No time here: the admin shows started_at in its own column, in the viewer's zone.
        return f"{'Dry run' if self.dry_run else 'Pruning'} #{self.pk}"
