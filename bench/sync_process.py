"""cwqbo's side of `sync_throughput.py --memory`, in a process of its own: `sync --all` against a sandbox served on
loopback by the bench's process, on the same simulated clock. Prints one JSON line: this process's peak resident
memory (VmHWM) and its resident memory before the run, so the simulators' memory is never counted, and the CPU the
run took (`time.process_time`): all of it cwqbo's, real HTTP over loopback included.

Run by sync_throughput.py; not meant to be run by hand. It imports no simulator code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cwqbo.clock import Clock, ScaledClock  # noqa: E402
from cwqbo.connectwise.client import CWClient  # noqa: E402
from cwqbo.quickbooks.client import QBOClient  # noqa: E402
from cwqbo.quickbooks.oauth import Endpoints, TokenManager  # noqa: E402
from cwqbo.settings.config import QBOSettings  # noqa: E402
from cwqbo.settings.prefs import Filters, Prefs  # noqa: E402
from cwqbo.settings.secrets import QBO_CLIENT_SECRET, FileStore, save_tokens, secret_name  # noqa: E402
from cwqbo.settings.tokens import TokenSet  # noqa: E402
from cwqbo.state.store import Store  # noqa: E402
from cwqbo.sync.engine import SyncDeps, SyncOptions, run_sync  # noqa: E402


def token_manager(setup: dict[str, Any], clock: Clock) -> TokenManager:
    """cwqbo's own token manager over a 0600 file store holding the grant the sandbox issued: a run longer than an
    hour of simulated time (100,000 invoices) refreshes its access token as a real one would."""
    qbo = setup["quickbooks"]
    settings = QBOSettings(environment="simulator", client_id=qbo["client_id"], realm_id=qbo["realm_id"],
                           simulator_url=qbo["simulator_url"])
    home = Path(setup["db"]).parent
    secrets = FileStore(home / "secrets.json")
    secrets.set(secret_name(PROFILE, QBO_CLIENT_SECRET), qbo["client_secret"])
    grant, now = setup["token_response"], clock.now()
    save_tokens(secrets, PROFILE, TokenSet(grant["access_token"], grant["refresh_token"], now + grant["expires_in"],
                                           now + grant["x_refresh_token_expires_in"], realm_id=qbo["realm_id"]))
    return TokenManager(settings, secrets, PROFILE, home / "oauth.lock", clock)


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc (Linux), in MB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


PROFILE = "bench"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setup", required=True, help="JSON: url, credentials, token, clock, store path")
    args = parser.parse_args()
    setup = json.loads(args.setup)
    clock = ScaledClock(setup["scale"], setup["start"], setup["real0"])  # the bench's clock, read from CLOCK_MONOTONIC
    cw_creds, qbo_creds = setup["connectwise"], setup["quickbooks"]
    tokens = token_manager(setup, clock)
    qbo = QBOClient(Endpoints.for_settings(tokens.settings).api_base, qbo_creds["realm_id"], tokens, clock=clock)
    cw = CWClient(site=cw_creds["site"], company_id=cw_creds["company_id"], public_key=cw_creds["public_key"],
                  private_key=cw_creds["private_key"], client_id=cw_creds["client_id"], codebase=cw_creds["codebase"],
                  scheme="http", clock=clock)
    store = Store.open(Path(setup["db"]))
    deps = SyncDeps(store, cw, qbo, Prefs(), Filters(), qbo_creds["realm_id"], clock)
    before = status_mb("VmRSS")
    t0 = clock.now()
    cpu0 = time.process_time()
    report = run_sync(deps, SyncOptions(selection="all", trigger="all"))
    cpu = time.process_time() - cpu0
    sim_seconds = clock.now() - t0
    print(json.dumps({"peak_mb": status_mb("VmHWM"), "before_mb": before, "cpu_s": cpu, "invoices": len(report.items),
                      "created": report.created, "failed": report.failed, "sim_seconds": sim_seconds,
                      "batched": len(report.batched_ids)}))
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
