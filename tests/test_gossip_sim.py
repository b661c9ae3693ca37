"""`python -m bench.gossip_sim` in its quick mode: the real Membership at 100 members.

Checks that the figures are sane, not how good they are: a join reaches everyone
within SWIM's dissemination bound (3 * log2 n periods), a killed member ends dead
at every other member within the detection bound of RFC section 14.6, and every
false-positive count is there.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from e2e_harness import ROOT, same_checkout_env

MEMBERS = 100


def test_quick_simulation_figures_are_sane(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gossip_sim",
            "--members",
            str(MEMBERS),
            "--periods",
            "30",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env=same_checkout_env(),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    assert "periods until a join reaches all" in proc.stdout
    figures = json.loads(out.read_text())
    modes = {r["mode"]: r for r in figures["results"]}
    assert set(modes) == {"swim", "lifeguard"}
    s_min = 4 * max(1.0, math.log10(MEMBERS + 1)) * 1.0
    for mode, r in modes.items():
        assert r["join_periods"] <= 3 * math.log2(MEMBERS), mode
        assert len(r["join_curve"]) == MEMBERS, mode  # every member learnt of the newcomer
        s = s_min * 6 if mode == "lifeguard" else s_min
        # A killed member: dead at all 100 others within (n - 1) P + P + S + G.
        assert 0 < r["dead_seconds"] <= (MEMBERS - 1) + 1 + s + 5, mode
        assert r["dead_seconds"] >= s_min, mode  # no member may skip the suspicion
        for key in ("loss_suspicions", "loss_deaths"):
            assert isinstance(r[key], int) and r[key] >= 0
        assert set(r["slow"]) == {"10x/one", "10x/two", "40x/one", "40x/two"}
        for figures in r["slow"].values():
            assert figures["suspicions"] >= 0 and figures["deaths"] >= 0
