"""The README's five-minute walkthrough, run line by line as a user pastes it, on the
embedded stack; and its client snippet, against the server the walkthrough starts."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[1]


def block_after(heading: str, language: str) -> str:
    """The first fenced block of `language` under the README's `heading`."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"## {heading}"):]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def test_the_walkthrough_runs_as_pasted(tmp_path):
    port = free_port()
    walkthrough = block_after("Five minutes with Vahini", "bash")
    snippet = block_after("Calling it from a ranker", "python").replace("127.0.0.1:50051", f"127.0.0.1:{port}")
    # The client snippet runs while the walkthrough's server is up, before it is stopped.
    script = walkthrough.replace("kill %1", f"python - <<'SNIPPET'\n{snippet}SNIPPET\nkill %1")
    assert script != walkthrough
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAHINI_")}
    env.update(TMPDIR=str(tmp_path), VAHINI_SERVING__PORT=str(port))
    done = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "registry published" in out and "model 'home_ranker': version 1 (new)" in out
    assert "sent 3 event(s), rejected 0" in out
    assert '"events": 3, "rows_written": 3, "dead_lettered": 0' in out
    assert re.search(r"^  city +\"Pune\" +present$", out, re.M)
    assert "home_ranker v1: 2 rows x 53 columns" in out
    assert re.search(r"^product\.price\s+19\.5\s+250$", out, re.M)
    assert re.search(r"^user\.account_age_days\s+400\s+400$", out, re.M)
    assert "['product.price', 'log_price', 'price_band'] (2, 53)" in out
    # The embedded stack's files went to the scratch directory, not into the clone.
    assert [p.name for p in tmp_path.glob("*/.vahini")] == [".vahini"]
