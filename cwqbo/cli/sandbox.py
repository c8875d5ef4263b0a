"""`cwqbo sandbox serve`: run both simulated APIs on loopback for trying cwqbo without real accounts."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Optional

import typer

from cwqbo.errors import UsageError

sandbox_app = typer.Typer(help="A local simulated ConnectWise + QuickBooks for trying cwqbo safely.",
                          no_args_is_help=True)


@sandbox_app.command("serve")
def serve(
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 (0 picks a free one)."),
    seed: int = typer.Option(1, "--seed", help="Seed for the generated ConnectWise data."),
    invoices: int = typer.Option(40, "--invoices", help="How many ConnectWise invoices to generate."),
    state: Optional[Path] = typer.Option(None, "--state", help="Keep the sandbox's data in this file across restarts."),
    country: str = typer.Option("US", "--country", help="QuickBooks company country: US or CA."),
) -> None:
    """Serve the sandbox until Ctrl-C, printing its URL and the credentials to use."""
    from rich.console import Console

    from cwqbo.sandbox.server import Sandbox

    country = country.upper()
    if country not in ("US", "CA"):
        raise UsageError(f"--country must be US or CA, not {country!r}")
    if invoices < 1 or invoices > 100_000:
        raise UsageError("--invoices must be between 1 and 100000")
    if not 0 <= port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    try:
        box = Sandbox(seed=seed, invoices=invoices, state_file=state, country=country)
    except ValueError as exc:
        raise UsageError(f"cannot load sandbox state from {state}: {exc}") from None
    try:
        server = box.start(port)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                         hint="pick another --port, or 0 for any free port") from None
    sys.stdout.write(f"READY {server.url}\n")
    sys.stdout.flush()
    creds = box.credentials(server.url)
    console = Console(soft_wrap=True)  # never break a credential across lines
    cw, qbo = creds["connectwise"], creds["quickbooks"]
    console.print(f"[bold]cwqbo sandbox[/bold] at {server.url}  (seed {seed}, {invoices} invoices, {country})")
    console.print(f"ConnectWise: site {cw['site']} (http), company {cw['company_id']}, public key {cw['public_key']}, "
                  f"private key {cw['private_key']}, clientId {cw['client_id']}")
    console.print(f"QuickBooks:  environment simulator, simulator_url {qbo['simulator_url']}, client id "
                  f"{qbo['client_id']}, secret {qbo['client_secret']}, realm {qbo['realm_id']}")
    if state is not None:
        console.print(f"State file:  {state}")
    console.print("Press Ctrl-C to stop.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if state is not None:
            box.save_state()


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")
