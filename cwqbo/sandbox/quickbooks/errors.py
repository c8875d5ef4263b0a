"""QBO faults: `QBOError`, the constructors for each recorded error code, and the fault bodies they render to.

Kept apart from the simulator so validators, the batch runner and the value helpers raise the same faults
with the same wording as the recorded sandbox traffic.
"""

from __future__ import annotations

from typing import Any


class QBOError(Exception):
    """One QBO fault: raised by validators, rendered as the upper-case `Fault` envelope."""

    def __init__(self, code: str, message: str, detail: str, element: str | None = "", status: int = 400,
                 fault_type: str = "ValidationFault") -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code, self.message, self.detail, self.element = code, message, detail, element
        self.status, self.fault_type = status, fault_type

    def fault(self) -> dict[str, Any]:
        err: dict[str, Any] = {"Message": self.message, "Detail": self.detail, "code": self.code}
        if self.element is not None:
            err["element"] = self.element
        return {"Error": [err], "type": self.fault_type}


def err_not_found() -> QBOError:
    return QBOError("610", "Object Not Found", "Object Not Found : Something you're trying to use has been made "
                    "inactive. Check the fields with accounts, customers, items, vendors or employees.")


def err_stale(user: str = "Sandbox Admin") -> QBOError:
    return QBOError("5010", "Stale Object Error", f"Stale Object Error : You and {user} were working on this at the "
                    f"same time. {user} finished before you did, so your work was not saved.")


def err_required(name: str) -> QBOError:
    return QBOError("2020", "Required param missing, need to supply the required value for the API",
                    f"Required parameter {name} is missing in the request", name)


def err_length(path: str, limit: int, got: int) -> QBOError:
    return QBOError("2050", "String length is either shorter or longer than supported by specification",
                    f"String length specified does not match the supported length. Min:0 Max:{limit} supported. "
                    f"Supplied length:{got}", path)


def err_bad_ref(kind: str, value: Any) -> QBOError:
    return QBOError("2500", "Invalid Reference Id", f"Invalid Reference Id : {kind} element id {value} not found", "")


def err_duplicate_name() -> QBOError:
    return QBOError("6240", "Duplicate Name Exists Error", "The name supplied already exists. : null", None)


def err_business(detail: str, element: str = "") -> QBOError:
    return QBOError("6000", "A business validation error has occurred while processing your request",
                    f"Business Validation Error: {detail}", element)


def err_unsupported(path: str, url: str) -> QBOError:
    return QBOError("500", "Unsupported Operation", f"Operation Could not find resource for relative : {path} of full "
                    f"path: {url} is not supported.", None)


def err_unknown_property(entity: str, prop: str, known: set[str]) -> QBOError:
    names = ", ".join(f'"{n}"' for n in sorted(known)[:60])
    return QBOError("2010", "Request has invalid or unsupported property",
                    f'Property Name:Unrecognized field "{prop}" (class com.intuit.schema.finance.v3.{entity}), not '
                    f"marked as ignorable ({len(known)} known properties: {names} [truncated]])\n specified is "
                    "unsupported or invalid", None)


def err_query(detail: str, code: str = "4000") -> QBOError:
    message = "Error parsing query" if code == "4000" else "Invalid query"
    return QBOError(code, message, detail, "")



def err_system_failure(status: int) -> QBOError:
    """The 5xx `SystemFault` a fault-injected request gets (error_next / error_rate)."""
    return QBOError("10000", "An application error has occurred while processing your request",
                    "System Failure Error: An unexpected error occurred while accessing or saving your data. Please "
                    "wait a few minutes and try again. If the problem persists, contact customer support.",
                    "", status, "SystemFault")


def err_wrong_realm() -> QBOError:
    """A valid token used against a company it was not granted for."""
    return QBOError("3100", "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403", "",
                    None, 403, "SERVICE")


def fault_envelope(exc: QBOError, time: str) -> dict[str, Any]:
    """The upper-case `Fault` body of an API error response; `time` as the service stamps it."""
    return {"Fault": exc.fault(), "time": time}


def auth_failure_body(detail: str, time_ms: int) -> dict[str, Any]:
    """The lower-case 401 body Intuit sends for a missing, expired or revoked bearer token."""
    return {"warnings": None, "intuitObject": None,
            "fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                                 "detail": detail, "code": "3200", "element": None}], "type": "AUTHENTICATION"},
            "report": None, "queryResponse": None, "batchItemResponse": [], "attachableResponse": [],
            "syncErrorResponse": None, "requestId": None, "time": time_ms, "status": None,
            "cdcresponse": []}
