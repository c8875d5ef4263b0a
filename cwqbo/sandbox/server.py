"""One sandbox serving both simulated APIs, plus `/_sandbox/` control routes and an optional state file.

The ConnectWise and QuickBooks paths don't collide, so a single loopback server (or an in-process
`httpx.MockTransport`) stands in for both services. With `state_file`, state survives a restart:
it is loaded at start and saved atomically after every request that may have changed it.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from cwqbo import money
from cwqbo.clock import Clock
from cwqbo.sandbox.bridge import LoopbackServer, in_process_transport
from cwqbo.sandbox.connectwise.simulator import CWSimulator
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.generator import generate
from cwqbo.sandbox.quickbooks.errors import QBOError
from cwqbo.sandbox.quickbooks.simulator import QBOSimulator

CW_COMPANY = "cwqbo_demo"
CW_PUBLIC_KEY = "sandbox-public"
CW_PRIVATE_KEY = "sandbox-private"
CW_CLIENT_ID = "00000000-0000-4000-8000-00000000c1d0"
CW_CODEBASE = "v2026_1/"
QBO_CLIENT_ID = "sandbox-client-id"
QBO_CLIENT_SECRET = "sandbox-client-secret"
QBO_REALM_ID = "9341453000000000"
STATE_VERSION = 2  # 2: ConnectWise GL ledger (entries, unposted rows, batches by GL entry)

_QBO_PREFIXES = ("/v3/", "/oauth2/", "/connect/oauth2", "/v2/oauth2/", "/.well-known/")


class OffsetClock(Clock):
    """Real time plus an offset that `/_sandbox/clock/advance` can move forward."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return super().now() + self._offset

    def monotonic(self) -> float:
        with self._lock:
            return super().monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


class Sandbox:
    """Both simulators behind one `handle`; see the module docstring."""

    def __init__(self, seed: int = 1, invoices: int = 40, *, clock: Clock | None = None, faults: Faults | None = None,
                 state_file: str | Path | None = None, country: str = "US", no_gl_invoice: bool = False) -> None:
        if country not in ("US", "CA"):
            raise ValueError("country must be US or CA")
        self.seed = seed
        self.n_invoices = invoices
        self.country = country
        self.no_gl_invoice = no_gl_invoice  # one Closed invoice ConnectWise holds no GL entries for
        self.clock: Clock = clock if clock is not None else OffsetClock()
        self.faults = faults if faults is not None else Faults()
        self.state_file = Path(state_file) if state_file is not None else None
        self._save_lock = threading.Lock()
        self._build()
        if self.state_file is not None and self.state_file.exists():
            self.load_state(self.state_file)

    def _build(self) -> None:
        self.cw = CWSimulator(self.clock, self.faults, company=CW_COMPANY, public_key=CW_PUBLIC_KEY,
                              private_key=CW_PRIVATE_KEY, client_id=CW_CLIENT_ID, codebase=CW_CODEBASE)
        self.cw.load(generate(self.seed, self.n_invoices, country=self.country, no_gl_invoice=self.no_gl_invoice),
                     copy_data=False)
        self.qbo = QBOSimulator(self.clock, self.faults, realm_id=QBO_REALM_ID, country=self.country,
                                client_id=QBO_CLIENT_ID, client_secret=QBO_CLIENT_SECRET)

    # -- state ----------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "seed": self.seed, "invoices": self.n_invoices, "country": self.country,
                "cw": self.cw.to_state(), "qbo": self.qbo.to_state()}

    def from_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported sandbox state version {state.get('version')!r}")
        self.cw.from_state(state["cw"])
        self.qbo.from_state(state["qbo"])

    def load_state(self, path: Path) -> None:
        state = money.loads(path.read_text(encoding="utf-8"))
        if "qbo_json" in state:
            state["qbo"] = json.loads(state.pop("qbo_json"))
        self.from_state(state)

    def save_state(self, path: Path | None = None) -> None:
        """Write the state file atomically (temp file in the same directory, then rename)."""
        target = path or self.state_file
        if target is None:
            return
        meta = {"version": STATE_VERSION, "seed": self.seed, "invoices": self.n_invoices, "country": self.country}
        # The QBO state keeps float timestamps (OAuth expiries), which money.dumps refuses by design: it rides
        # along as a nested JSON string parsed with plain json, while the CW money stays exact.
        text = (money.dumps(meta)[:-1] + ',"cw":' + self.cw.state_json() + ',"qbo_json":'
                + json.dumps(json.dumps(self.qbo.to_state())) + "}")
        with self._save_lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".sandbox-", suffix=".tmp", dir=target.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def reset(self) -> None:
        """Back to freshly generated data; faults cleared."""
        self.faults.update(Faults().to_json())
        self._build()

    # -- serving --------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        mutating = request.method.upper() not in ("GET", "HEAD") or path.rstrip("/") == "/connect/oauth2"
        try:
            if path.startswith("/_sandbox/"):
                return self._control(request, path)
            if path.lower().startswith("/login/") or path.startswith(self.cw.api_prefix + "/"):
                return self.cw.handle(request)
            if path.startswith(_QBO_PREFIXES) or path.rstrip("/") == "/connect/oauth2":
                return self.qbo.handle(request)
            return _json(404, {"error": "not_found", "message": f"no sandbox route for {path}"})
        finally:
            if mutating and self.state_file is not None:
                self.save_state()

    def transport(self) -> httpx.MockTransport:
        """In-process transport; a dropped connection surfaces as httpx.ReadError, as on a socket."""
        return in_process_transport(self.handle)

    def start(self, port: int = 0) -> LoopbackServer:
        """Serve on 127.0.0.1 in a background thread; call `.stop()` on the result."""
        return LoopbackServer(self.handle, port).start()

    def start_in_thread(self, port: int = 0) -> tuple[str, Callable[[], None]]:
        server = self.start(port)
        return server.url, server.stop

    def credentials(self, url: str | None = None) -> dict[str, Any]:
        """The documented (not secret) sandbox credentials, with URLs when the server address is known."""
        site = url.split("://", 1)[-1].rstrip("/") if url else None
        return {
            "connectwise": {"site": site, "scheme": "http", "company_id": CW_COMPANY, "public_key": CW_PUBLIC_KEY,
                            "private_key": CW_PRIVATE_KEY, "client_id": CW_CLIENT_ID, "codebase": CW_CODEBASE,
                            "api_url": f"{url.rstrip('/')}/{CW_CODEBASE}apis/3.0" if url else None},
            "quickbooks": {"environment": "simulator", "simulator_url": url.rstrip("/") if url else None,
                           "client_id": QBO_CLIENT_ID, "client_secret": QBO_CLIENT_SECRET, "realm_id": QBO_REALM_ID},
        }

    # -- control routes -------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        invoices = self.cw.invoices()
        unposted = set(self.cw.unposted_ids())
        qbo_docs = {entity: [{"Id": d["Id"], "DocNumber": d.get("DocNumber"), "TotalAmt": d.get("TotalAmt"),
                              "CustomerRef": d.get("CustomerRef")}
                             for d in self.qbo.documents(entity)] for entity in ("Invoice", "CreditMemo")}
        return {"cw": {"invoices": len(invoices), "unposted": len(unposted),
                       "closed": sum(1 for i in invoices if self.cw.is_closed(i["id"])),
                       "export_invoice_id_field": self.cw.export_invoice_id_field,
                       "batches": [{"id": b["id"], "batchIdentifier": b["batchIdentifier"],
                                    "invoiceIds": self.cw.invoices_in_batch(b["id"]),
                                    "glEntryIds": self.cw.batch_entry_ids(b["id"])} for b in self.cw.batches()]},
                "qbo": {"invoices": qbo_docs["Invoice"], "credit_memos": qbo_docs["CreditMemo"],
                        "customers": len(self.qbo.documents("Customer")), "items": len(self.qbo.documents("Item"))},
                "faults": _plain(self.faults.to_json()), "now": self.clock.now()}

    def _control(self, request: httpx.Request, path: str) -> httpx.Response:
        request.read()
        method = request.method.upper()
        route = path.rstrip("/")
        try:
            body = money.loads(request.content) if request.content else {}
        except ValueError:
            return _json(400, {"error": "invalid JSON body"})
        if not isinstance(body, dict):
            return _json(400, {"error": "body must be a JSON object"})
        if route == "/_sandbox/faults":
            if method == "POST":
                values = {k: (float(v) if k in ("error_rate", "timeout_seconds", "latency_seconds") else v)
                          for k, v in body.items()}
                try:
                    self.faults.update(values)
                except ValueError as exc:
                    return _json(400, {"error": str(exc)})
            return _json(200, _plain(self.faults.to_json()))
        if route == "/_sandbox/state" and method == "GET":
            return _json(200, self.summary())
        if method != "POST":
            return _json(405, {"error": f"{method} not allowed on {route}"})
        if route == "/_sandbox/clock/advance":
            seconds: Any = body.get("seconds")  # any JSON value: float() takes it or refuses it (→ 400)
            advance = getattr(self.clock, "advance", None)
            if advance is None:
                return _json(400, {"error": "this sandbox's clock cannot be advanced"})
            try:
                advance(float(seconds))
            except (TypeError, ValueError):
                return _json(400, {"error": "seconds must be a number"})
            return _json(200, {"now": self.clock.now()})
        if route == "/_sandbox/reset":
            self.reset()
            return _json(200, {"ok": True})
        if route == "/_sandbox/expire-access-tokens":
            self.qbo.expire_access_tokens()
            return _json(200, {"ok": True})
        if route == "/_sandbox/cw/settings":
            try:
                self.cw.set_export_invoice_id_field(str(body.get("export_invoice_id_field")))
            except ValueError as exc:
                return _json(400, {"error": str(exc)})
            return _json(200, {"export_invoice_id_field": self.cw.export_invoice_id_field})
        if route == "/_sandbox/cw/permission":
            try:
                self.cw.set_permission(str(body.get("area")), str(body.get("level")),
                                       kind=str(body.get("kind", "inquire")))
            except ValueError as exc:
                return _json(400, {"error": str(exc)})
            return _json(200, {"ok": True})
        if route == "/_sandbox/qbo/payments":
            return self._qbo_payment(body)
        return _json(404, {"error": f"no sandbox control route {route}"})

    def _qbo_payment(self, body: dict[str, Any]) -> httpx.Response:
        """What a bookkeeper does in QuickBooks, for e2e tests and the demo: {"action": receive|void|delete|edit,
        "customer_id", "lines": [[Invoice|CreditMemo, id, amount], …], "date", "method", "id"}; answers the Payment."""
        action = body.get("action", "receive")
        try:
            lines = [(str(e), str(i), money.to_decimal(a)) for e, i, a in body.get("lines") or []]
            if action == "receive":
                done = self.qbo.receive_payment(str(body["customer_id"]), lines, date=str(body["date"]),
                                                method=body.get("method"))
            elif action in ("void", "delete"):
                done = getattr(self.qbo, f"{action}_payment")(str(body["id"]))
            elif action == "edit":
                done = self.qbo.edit_payment(str(body["id"]), lines=lines or None)
            else:
                return _json(400, {"error": f"unknown action {action!r}"})
        except QBOError as exc:
            return _json(400, {"error": exc.detail, "fault": exc.fault()["Error"][0]})
        except (KeyError, TypeError, ValueError) as exc:
            return _json(400, {"error": f"bad payment request: {exc!r}"})
        return _json(200, {"Payment": done})


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Faults hold floats (rates, seconds): expose them as Decimal so money.dumps accepts them."""
    from decimal import Decimal

    return {k: (Decimal(repr(v)) if isinstance(v, float) else v) for k, v in values.items()}


def _json(status: int, body: Any) -> httpx.Response:
    from decimal import Decimal

    def clean(obj: Any) -> Any:
        if isinstance(obj, float):
            return Decimal(repr(obj))
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        return obj

    return httpx.Response(status, content=money.dumps(clean(body)).encode("utf-8"),
                          headers={"Content-Type": "application/json"})
