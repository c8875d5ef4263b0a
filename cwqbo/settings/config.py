"""Where cwqbo keeps its files, and config.toml (profiles, connection settings, prefs, filters).

Secrets never live here: they go to `secrets.py`. A bad config file is a `ConfigError` naming
`file:line: key`, so the user can fix it without reading a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from cwqbo.errors import ConfigError
from cwqbo.settings.paths import APP as APP, DEFAULT_PROFILE as DEFAULT_PROFILE, Paths as Paths  # their home is paths.py
from cwqbo.settings.prefs import Filters, Prefs

DEFAULT_REDIRECT_URI = "http://127.0.0.1:8725/callback"
Environment = Literal["production", "sandbox", "simulator"]
SecretStoreKind = Literal["keyring", "file"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)
SECRET_STORES: tuple[str, ...] = get_args(SecretStoreKind)
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DEFAULT_CW_API_VERSION = "2025.1"
_CW_API_VERSION = re.compile(r"^[0-9]{4}\.[0-9]{1,2}$")


@dataclass(frozen=True)
class CWSettings:
    site: str = ""
    company_id: str = ""
    public_key: str = ""
    client_id: str = ""
    scheme: str = "https"
    company_name: str = ""  # from companyinfo, for display only
    # ConnectWise pins field shapes to this through `Accept: application/vnd.connectwise.com+json; version=…`.
    api_version: str = DEFAULT_CW_API_VERSION

    @property
    def configured(self) -> bool:
        return bool(self.site and self.company_id and self.public_key and self.client_id)


@dataclass(frozen=True)
class QBOSettings:
    environment: str = "production"
    client_id: str = ""
    redirect_uri: str = DEFAULT_REDIRECT_URI
    realm_id: str = ""
    simulator_url: str = ""
    company_name: str = ""  # from CompanyInfo at connect time, for display only

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.realm_id)


NOTIFY_ON: tuple[str, ...] = ("failures", "always")


@dataclass(frozen=True)
class NotifySettings:
    """An optional webhook told about sync runs (Slack/Teams incoming webhooks accept its `text`)."""

    webhook_url: str = ""
    on: str = "failures"  # "failures": runs with failed invoices or errors; "always": every run

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url)


@dataclass
class Profile:
    name: str = DEFAULT_PROFILE
    connectwise: CWSettings = field(default_factory=CWSettings)
    quickbooks: QBOSettings = field(default_factory=QBOSettings)
    prefs: Prefs = field(default_factory=Prefs)
    filters: Filters = field(default_factory=Filters)
    secret_store: str = "keyring"
    notify: NotifySettings = field(default_factory=NotifySettings)


@dataclass
class Config:
    profiles: dict[str, Profile] = field(default_factory=dict)
    default_profile: str = DEFAULT_PROFILE

    def profile(self, name: str | None = None) -> Profile:
        """The named profile (default when None); a missing default profile is created empty."""
        name = name or self.default_profile
        if name in self.profiles:
            return self.profiles[name]
        if name == self.default_profile and not self.profiles:
            self.profiles[name] = Profile(name=name)
            return self.profiles[name]
        known = ", ".join(sorted(self.profiles)) or "none"
        raise ConfigError(f"no profile named {name!r} (profiles: {known})",
                          hint="run `cwqbo connect` with --profile NAME to create it")

    def ensure_profile(self, name: str) -> Profile:
        if not _PROFILE_NAME.match(name):
            raise ConfigError(f"invalid profile name {name!r}: use letters, digits, - and _")
        return self.profiles.setdefault(name, Profile(name=name))


# -- reading ------------------------------------------------------------------------------------------


class _Locator:
    """Finds the line of a key in TOML text, so errors can say `file:line`."""

    _header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")

    def __init__(self, text: str) -> None:
        self.index: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            m = self._header.match(line)
            if m:
                table = self._split(m.group(1))
                self.index.setdefault(table, number)
                continue
            m = self._key.match(line)
            if m:
                self.index.setdefault(table + self._split(m.group(1)), number)

    @staticmethod
    def _split(dotted: str) -> tuple[str, ...]:
        parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", dotted)
        return tuple(next(p for p in groups if p) if any(groups) else "" for groups in parts)

    def line(self, path: tuple[str, ...]) -> int:
        while path:
            if path in self.index:
                return self.index[path]
            path = path[:-1]
        return 1


def _fail(where: str, loc: _Locator, path: tuple[str, ...], message: str) -> ConfigError:
    return ConfigError(f"{where}:{loc.line(path)}: {'.'.join(path)}: {message}")


def _settings(cls: type[Any], raw: Any, where: str, loc: _Locator, path: tuple[str, ...]) -> Any:
    if not isinstance(raw, dict):
        raise _fail(where, loc, path, "must be a table")
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in raw.items():
        if key not in names:
            raise _fail(where, loc, path + (key,), f"unknown key (expected one of: {', '.join(sorted(names))})")
        if not isinstance(value, str):
            raise _fail(where, loc, path + (key,), "must be a string")
    return cls(**raw)


def _check_url(value: str, where: str, loc: _Locator, path: tuple[str, ...]) -> None:
    if value and not re.match(r"^https?://[^/\s]+", value):
        raise _fail(where, loc, path, f"not an http(s) URL: {value!r}")


def _profile(name: str, raw: Any, where: str, loc: _Locator) -> Profile:
    base = ("profiles", name)
    if not isinstance(raw, dict):
        raise _fail(where, loc, base, "must be a table")
    if not _PROFILE_NAME.match(name):
        raise _fail(where, loc, base, "profile names use letters, digits, - and _")
    allowed = {"connectwise", "quickbooks", "prefs", "filters", "secret_store", "notify"}
    for key in raw:
        if key not in allowed:
            raise _fail(where, loc, base + (key,), f"unknown key (expected one of: {', '.join(sorted(allowed))})")
    cw = _settings(CWSettings, raw.get("connectwise", {}), where, loc, base + ("connectwise",))
    if cw.scheme not in ("https", "http"):
        raise _fail(where, loc, base + ("connectwise", "scheme"), "must be \"https\" or \"http\"")
    if not _CW_API_VERSION.match(cw.api_version):
        raise _fail(where, loc, base + ("connectwise", "api_version"),
                    f"must look like YYYY.N, e.g. \"{DEFAULT_CW_API_VERSION}\" (got {cw.api_version!r})")
    qbo = _settings(QBOSettings, raw.get("quickbooks", {}), where, loc, base + ("quickbooks",))
    if qbo.environment not in ENVIRONMENTS:
        raise _fail(where, loc, base + ("quickbooks", "environment"),
                    f"must be one of {', '.join(ENVIRONMENTS)} (got {qbo.environment!r})")
    _check_url(qbo.redirect_uri, where, loc, base + ("quickbooks", "redirect_uri"))
    _check_url(qbo.simulator_url, where, loc, base + ("quickbooks", "simulator_url"))
    if qbo.environment == "simulator" and not qbo.simulator_url:
        raise _fail(where, loc, base + ("quickbooks", "simulator_url"), "required when environment = \"simulator\"")
    store = raw.get("secret_store", "keyring")
    if store not in SECRET_STORES:
        raise _fail(where, loc, base + ("secret_store",), f"must be \"keyring\" or \"file\" (got {store!r})")
    prefs = _sub(raw, "prefs", where, loc, base, _prefs_from_dict, Prefs)
    filters = _sub(raw, "filters", where, loc, base, _filters_from_dict, Filters)
    notify = _settings(NotifySettings, raw.get("notify", {}), where, loc, base + ("notify",))
    if notify.webhook_url and not re.match(r"^https?://[^/\s]+\S*$", notify.webhook_url):
        raise _fail(where, loc, base + ("notify", "webhook_url"), "must be an http(s) URL")
    if notify.on not in NOTIFY_ON:
        raise _fail(where, loc, base + ("notify", "on"),
                    f"must be \"failures\" or \"always\" (got {notify.on!r})")
    return Profile(name=name, connectwise=cw, quickbooks=qbo, prefs=prefs, filters=filters, secret_store=store,
                   notify=notify)


def _sub(raw: dict[str, Any], key: str, where: str, loc: _Locator, base: tuple[str, ...],
         convert: Any, default: type[Any]) -> Any:
    if key not in raw:
        return default()
    try:
        return convert(raw[key], ".".join(base + (key,)))
    except ConfigError as e:
        # prefs.py names the key ("profiles.x.prefs.tax.mode: ..."); add the file and line.
        msg = str(e)
        dotted = msg.split(":", 1)[0].strip()
        path = tuple(dotted.split(".")) if dotted.startswith(".".join(base)) else base + (key,)
        raise ConfigError(f"{where}:{loc.line(path)}: {msg}", hint=e.hint) from None


def load_config(path: Path) -> Config:
    """Parse config.toml; a missing file is an empty config (first run)."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: cannot read config: {e}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = m.group(1) if m else "1"
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e)) or "invalid TOML"
        raise ConfigError(f"{where}:{line}: TOML syntax error: {reason}") from None
    loc = _Locator(text)
    for key in raw:
        if key not in ("default_profile", "profiles"):
            raise _fail(where, loc, (key,), "unknown key (expected default_profile or [profiles.NAME])")
    default = raw.get("default_profile", DEFAULT_PROFILE)
    if not isinstance(default, str) or not default:
        raise _fail(where, loc, ("default_profile",), "must be a non-empty string")
    profiles_raw = raw.get("profiles", {})
    if not isinstance(profiles_raw, dict):
        raise _fail(where, loc, ("profiles",), "must be a table of [profiles.NAME]")
    profiles = {name: _profile(name, value, where, loc) for name, value in profiles_raw.items()}
    return Config(profiles=profiles, default_profile=default)


# -- writing ------------------------------------------------------------------------------------------


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    """tomli-w cannot write None; omit those keys (they read back as defaults)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if v is None:
            continue
        out[k] = _drop_empty(v) if isinstance(v, dict) else v
    return out


def config_to_dict(config: Config) -> dict[str, Any]:
    profiles: dict[str, Any] = {}
    for name, p in config.profiles.items():
        profiles[name] = {
            "secret_store": p.secret_store,
            "connectwise": dataclasses.asdict(p.connectwise),
            "quickbooks": dataclasses.asdict(p.quickbooks),
            "prefs": _prefs_to_dict(p.prefs),
            "filters": _filters_to_dict(p.filters),
        }
        if p.notify != NotifySettings():
            profiles[name]["notify"] = dataclasses.asdict(p.notify)
    return _drop_empty({"default_profile": config.default_profile, "profiles": profiles})


def save_config(config: Config, path: Path) -> None:
    """Write atomically with mode 0600, so a crash never leaves half a file (see `cwqbo.files`)."""
    import tomli_w

    from cwqbo.files import atomic_write

    atomic_write(path, tomli_w.dumps(config_to_dict(config)).encode("utf-8"), prefix=".config-")


# -- prefs/filters: prefs.py owns their conversion ----------------------------------------------------------


def _prefs_from_dict(d: Any, where: str) -> Prefs:
    from cwqbo.settings.prefs import prefs_from_dict

    return prefs_from_dict(d, where)


def _filters_from_dict(d: Any, where: str) -> Filters:
    from cwqbo.settings.prefs import filters_from_dict

    return filters_from_dict(d, where)


def _prefs_to_dict(p: Prefs) -> dict[str, Any]:
    from cwqbo.settings.prefs import prefs_to_dict

    return prefs_to_dict(p)


def _filters_to_dict(f: Filters) -> dict[str, Any]:
    from cwqbo.settings.prefs import filters_to_dict

    return filters_to_dict(f)
