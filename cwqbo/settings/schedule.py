"""Automatic sync schedule: cron expressions, next run times, the crontab entry and systemd units.

Pure text functions (`crontab_line`, `merge_crontab`, `remove_from_crontab`, `systemd_units`) are separate
from the two that run the `crontab` command (`install_crontab`, `uninstall_crontab`), so the rules are
testable without touching a real crontab. Entries are found again by a marker comment naming the profile,
which makes install idempotent and uninstall exact.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from croniter import croniter  # type: ignore[import-untyped]  # ships no type hints

from cwqbo.errors import ConfigError, CwqboError

KEYWORDS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
            "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
MARKER = "# cwqbo:"  # "# cwqbo:PROFILE managed by `cwqbo prefs schedule`" precedes the entry it owns


def validate_cron(expr: str) -> str:
    """The expression, trimmed, if cron would accept it: five fields or an @keyword (not @reboot)."""
    text = " ".join(str(expr).split())
    five = KEYWORDS.get(text.lower(), text)
    if len(five.split(" ")) != 5 or not croniter.is_valid(five):
        raise ConfigError(f"{expr!r} is not a valid cron expression (five fields: minute hour day month weekday, "
                          "e.g. '0 6 * * *', or @daily/@hourly/@weekly/@monthly)")
    return text


def next_runs(expr: str, n: int, now: datetime) -> list[datetime]:
    """The next `n` times the schedule fires after `now` (in now's timezone)."""
    five = KEYWORDS.get(validate_cron(expr).lower(), validate_cron(expr))
    it = croniter(five, now)
    return [it.get_next(datetime) for _ in range(max(0, n))]


def _cron_escape(text: str) -> str:
    return text.replace("%", "\\%")  # cron turns a bare % into a newline


def marker(profile: str) -> str:
    return f"{MARKER}{profile} managed by `cwqbo prefs schedule`"


@dataclass(frozen=True, slots=True)
class JobTarget:
    """Exactly what the scheduled job must reach: cron and systemd start with another environment (no CWQBO_HOME,
    no XDG_* variables, another working directory), so everything is spelled out as absolute paths."""

    profile: str
    config_file: Path
    home: Path | None = None  # CWQBO_HOME, when the user set one
    xdg_data_home: Path | None = None  # where platformdirs found the data dir, when no CWQBO_HOME

    @classmethod
    def current(cls, profile: str, config_file: Path, env: Mapping[str, str]) -> JobTarget:
        home = env.get("CWQBO_HOME")
        xdg = env.get("XDG_DATA_HOME") if not home else None
        return cls(profile, _absolute(config_file), _absolute(Path(home)) if home else None,
                   _absolute(Path(xdg)) if xdg else None)

    def environment(self) -> list[tuple[str, str]]:
        env = [("CWQBO_SCHEDULED", "1")]
        if self.home is not None:
            env.append(("CWQBO_HOME", str(self.home)))
        if self.xdg_data_home is not None:
            env.append(("XDG_DATA_HOME", str(self.xdg_data_home)))
        return env

    def arguments(self, cwqbo_path: str) -> list[str]:
        return [cwqbo_path, "--config", str(self.config_file), "--profile", self.profile, "sync", "--all"]


def _absolute(p: Path) -> Path:
    return Path(os.path.abspath(p.expanduser()))


def crontab_line(expr: str, cwqbo_path: str, target: JobTarget) -> str:
    """The crontab entry: CWQBO_SCHEDULED=1 [CWQBO_HOME=…] cwqbo --config FILE --profile P sync --all, at `expr`.

    Every value is shell-quoted (cron runs the line with /bin/sh) and every % escaped (cron makes a bare % a newline).
    """
    env = " ".join(f"{name}={shlex.quote(value)}" for name, value in target.environment())
    cmd = f"{env} {shlex.join(target.arguments(cwqbo_path))}"
    return f"{validate_cron(expr)} {_cron_escape(cmd)}"


def _owned(lines: list[str], profile: str) -> set[int]:
    """Indexes of our marker line and the entry right after it."""
    owned: set[int] = set()
    for i, line in enumerate(lines):
        if line.startswith(f"{MARKER}{profile} "):
            owned.add(i)
            if i + 1 < len(lines) and not lines[i + 1].startswith("#"):
                owned.add(i + 1)
    return owned


def remove_from_crontab(existing: str, profile: str) -> str:
    lines = existing.splitlines()
    owned = _owned(lines, profile)
    kept = [ln for i, ln in enumerate(lines) if i not in owned]
    return "\n".join(kept) + ("\n" if kept else "")


def merge_crontab(existing: str, line: str, profile: str) -> str:
    """`existing` with this profile's entry replaced by `line` (other entries untouched)."""
    base = remove_from_crontab(existing, profile)
    return base + f"{marker(profile)}\n{line}\n"


class CrontabError(CwqboError):
    """The crontab command is missing or refused the change."""


@dataclass(frozen=True, slots=True)
class CrontabChange:
    changed: bool
    before: str
    after: str


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise CrontabError(f"{args[0]}: command not found",
                           hint="install cron, or use `cwqbo prefs schedule --print --systemd`") from None
    except subprocess.TimeoutExpired:
        raise CrontabError(f"{args[0]} did not answer within 30 s") from None


def read_crontab(crontab: str = "crontab") -> str:
    proc = _run([crontab, "-l"])
    if proc.returncode != 0:
        if "no crontab" in (proc.stderr or "").lower():
            return ""
        raise CrontabError(f"crontab -l failed: {(proc.stderr or '').strip() or proc.returncode}")
    return proc.stdout


def _write(text: str, crontab: str) -> None:
    proc = _run([crontab, "-"], stdin=text)
    if proc.returncode != 0:
        raise CrontabError(f"crontab refused the new table: {(proc.stderr or '').strip() or proc.returncode}")


def install_crontab(line: str, profile: str, *, crontab: str = "crontab") -> CrontabChange:
    """Add or replace this profile's entry; writing nothing when it is already there (idempotent)."""
    before = read_crontab(crontab)
    after = merge_crontab(before, line, profile)
    if after == before:
        return CrontabChange(False, before, after)
    _write(after, crontab)
    return CrontabChange(True, before, after)


def uninstall_crontab(profile: str, *, crontab: str = "crontab") -> CrontabChange:
    before = read_crontab(crontab)
    after = remove_from_crontab(before, profile)
    if after == before:
        return CrontabChange(False, before, after)
    _write(after, crontab)
    return CrontabChange(True, before, after)


uninstall = uninstall_crontab

# --- systemd --------------------------------------------------------------------------------------------

_DOW = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_ONCAL = {"@hourly": "hourly", "@daily": "daily", "@midnight": "daily", "@weekly": "weekly",
          "@monthly": "monthly", "@yearly": "yearly", "@annually": "yearly"}


def _number(value: str, pad: bool) -> str:
    return f"{int(value):02d}" if pad else str(int(value))


def _field(text: str, *, pad: bool, dow: bool = False) -> str:
    if text == "*":
        return "*"
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?", part)
        if not m:
            raise ConfigError(f"cannot express cron field {text!r} as a systemd calendar; use the crontab")
        start, end, step = m.groups()
        if dow:
            if step or start == "*":
                raise ConfigError(f"cannot express weekday {text!r} as a systemd calendar; use the crontab")
            out.append(_DOW[int(start)] + (f"..{_DOW[int(end)]}" if end else ""))
            continue
        s = "0" if start == "*" else _number(start, pad)
        if end:
            s += f"..{_number(end, pad)}"
        if step:
            s += f"/{int(step)}"
        out.append(s)
    return ",".join(out)


def on_calendar(expr: str) -> str:
    """A systemd OnCalendar= value equivalent to the cron expression."""
    text = validate_cron(expr)
    if text.lower() in _ONCAL:
        return _ONCAL[text.lower()]
    minute, hour, dom, month, dow = text.split(" ")
    if dom != "*" and dow != "*":
        raise ConfigError("cron fires when day-of-month OR weekday matches; systemd needs both: use the crontab")
    if any(re.search(r"[A-Za-z]", f) for f in (month, dow)):
        raise ConfigError("use numbers for month and weekday to print a systemd timer")
    days = "" if dow == "*" else _field(dow, pad=False, dow=True) + " "
    return f"{days}*-{_field(month, pad=True)}-{_field(dom, pad=True)} {_field(hour, pad=True)}:{_field(minute, pad=True)}:00"


def _systemd_quote(arg: str) -> str:
    """One ExecStart=/Environment= word: double-quoted when needed, with systemd's own % specifier escaped."""
    arg = arg.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_units(expr: str, cwqbo_path: str, target: JobTarget) -> dict[str, str]:
    """Text of a user service + timer (for `prefs schedule --print --systemd`); file name → content."""
    profile = target.profile
    name = f"cwqbo-sync-{re.sub(r'[^A-Za-z0-9_.-]', '_', profile)}"
    exec_start = " ".join(_systemd_quote(a) for a in target.arguments(cwqbo_path))
    environment = "".join(f"Environment={_systemd_quote(f'{k}={v}')}\n" for k, v in target.environment())
    service = (f"[Unit]\nDescription=cwqbo: sync closed ConnectWise invoices to QuickBooks ({profile})\n"
               f"After=network-online.target\nWants=network-online.target\n\n"
               f"[Service]\nType=oneshot\n{environment}ExecStart={exec_start}\n"
               # exit code 75 = another run holds the lock: not a failure of the timer
               f"SuccessExitStatus=75\n")
    timer = (f"[Unit]\nDescription=Run {name} on schedule ({validate_cron(expr)})\n\n"
             f"[Timer]\nOnCalendar={on_calendar(expr)}\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n")
    return {f"{name}.service": service, f"{name}.timer": timer}
