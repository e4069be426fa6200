"""manage.py seed_demo: create (or refresh) the demo workspace and print the login (demo/seed.py)."""

from django.core.management.base import BaseCommand

from demo.seed import seed_demo


class Command(BaseCommand):
    help = "Create the demo workspace, an admin and one user per role, and print the login."

    def handle(self, *args, **options) -> None:
        password = seed_demo(self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo workspace ready."))
        self.stdout.write(f"  Login: admin / {password}   (also ops, marketer, viewer with the same password)")
