import os
import re
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import free_port


def test_demo_runs_end_to_end_through_a_real_worker(settings, tmp_path):
    env = dict(os.environ,
               TOUCHSTREAM_TOPIC_PREFIX=settings.topic_prefix + "-demo",
               TOUCHSTREAM_APP_ID=settings.app_id + "-demo",
               TOUCHSTREAM_WORKER_WEB_PORT=str(free_port()),
               TOUCHSTREAM_HTTP_PORT=str(free_port()),
               TOUCHSTREAM_HTTP_OPS_PORT=str(free_port()),
               TOUCHSTREAM_PSEUDONYM_SECRET_FILE=settings.pseudonym_secret_file)  # the stack's
    result = subprocess.run([sys.executable, "-m", "apps.cli", "demo", "--events", "300"],
                            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resolved to a OneID            : 300" in result.stdout
    assert "OneIDs after merges            : 50" in result.stdout
    assert "result                         : OK" in result.stdout
    assert "0 difference(s) in 0 profile(s)" in result.stdout  # verify: live equals the lake's history
    report = (tmp_path / ".local" / "demo-report.html").read_text()  # the lake's charts, one file
    assert f"marketing report               : {Path('.local') / 'demo-report.html'} (" in result.stdout
    assert report.count('<section id="') == 7 and report.count('<svg class="chart"') >= 5
    assert "Orders by channel, per attribution model (conversions):" in result.stdout
    models = r"channel +\| first +\| last +\| linear +\| u_shaped +\| time_decay +\| markov"
    assert re.search(models, result.stdout)  # every attribution model side by side
    assert "RFM segments (customers in the lake):" in result.stdout and "cant_lose_them" in result.stdout
