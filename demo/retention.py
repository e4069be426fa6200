"""Demo: the partitions created ahead and one dry run of the pruning, so Admin → Retention →
Prunings shows what a pruning would remove, the tables' sizes and when the next one runs.

A dry run removes nothing: the demo's imported events and runs stay for the other pages.
"""

from audiences.partitions import ensure_partitions
from retention.prune import PruneBusy
from retention.tasks import run_and_record


def populate_demo(workspace, state: dict, out) -> None:
    ensure_partitions()
    try:
        _record, report = run_and_record(dry_run=True, trigger="demo")
    except PruneBusy:
        out.write("  Demo retention: a pruning is running; see Admin → Retention → Prunings.")
        return
    out.write("  Demo retention: a dry run of the pruning (Admin → Retention → Prunings): " + "; ".join(report.lines()))
