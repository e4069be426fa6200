"""Production static files: collectstatic with DEBUG off (hashed names, WhiteNoise) must succeed.

It failed while the vendored Chart.js named a source map that is not shipped: the manifest storage
rewrites every sourceMappingURL to the hashed name of the map, and a missing map stops it.
"""

import re
from pathlib import Path

from tests.test_settings import PROD, run_manage

ROOT = Path(__file__).resolve().parent.parent
SOURCE_MAP = re.compile(rb"(?m)^\s*(?://|/\*)# sourceMappingURL=(\S+?)(?:\s*\*/)?\s*$")


def test_no_shipped_file_names_a_source_map_that_is_not_beside_it():
    missing = []
    for path in (ROOT / "static").rglob("*"):
        if path.suffix in {".js", ".css"}:
            for target in SOURCE_MAP.findall(path.read_bytes()):
                if not (path.parent / target.decode()).exists():
                    missing.append(f"{path.relative_to(ROOT)} -> {target.decode()}")
    assert not missing


def test_collectstatic_succeeds_with_production_settings(tmp_path):
    result = run_manage("collectstatic", "--noinput", "-v", "0", **PROD, STATIC_ROOT=str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = (tmp_path / "staticfiles.json").read_text()
    for name in ("vendor/chart-4.6.1.umd.min.js", "vendor/htmx-2.0.11.min.js", "console/app.css"):
        assert f'"{name}"' in manifest
    hashed = re.search(r'"vendor/chart-4\.6\.1\.umd\.min\.js": "([^"]+)"', manifest).group(1)
    assert (tmp_path / hashed).exists() and (tmp_path / (hashed + ".gz")).exists()


def test_the_pages_name_hashed_static_files_under_production_settings(tmp_path):
    """A page rendered with DEBUG off links its CSS and scripts by their hashed, collected names."""
    assert run_manage("collectstatic", "--noinput", "-v", "0", **PROD, STATIC_ROOT=str(tmp_path)).returncode == 0
    script = (
        "import django; django.setup()\n"
        "from django.templatetags.static import static\n"
        "print(static('console/app.css')); print(static('vendor/chart-4.6.1.umd.min.js'))\n"
    )
    env = {**PROD, "STATIC_ROOT": str(tmp_path)}
    result = run_manage("shell", "-c", script, **env)
    assert result.returncode == 0, result.stderr[-2000:]
    css, chart = result.stdout.split()[-2:]
    assert re.fullmatch(r"/static/console/app\.[0-9a-f]{12}\.css", css)
    assert (tmp_path / chart.removeprefix("/static/")).exists()
