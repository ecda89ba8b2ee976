"""SIGHUP: read the configuration file, the users file and the TLS certificate again, without dropping calls.

Everything is read and checked first; only when all of it is sound is anything changed, so a broken file
leaves the running configuration as it was (``event=reload_failed``). What a running server can take
(:data:`imsconf.app.config.RELOADABLE`) takes effect for new requests, calls and conferences; other changed
settings are named (``event=reload_needs_restart``) and keep their old value. The certificate goes into the
live TLS server context, so new SIP TLS connections present it and established ones keep theirs.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imsconf.keys.policy import DownlinkMode, RekeyPolicy

from .config import ReloadPlan, load_settings, reload_plan
from .pki import certificate_fingerprint, client_ssl_context, reload_server_certificate, server_ssl_context
from .systemd import ServiceNotifier
from .users import UserStoreError, authenticator_for

if TYPE_CHECKING:
    from .server import Server

__all__ = ["Reloader"]

log = logging.getLogger("imsconf.server")

_AUTH = ("auth", "realm", "digest_algorithms")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', "'").replace("\n", " ")[:300] + '"'


class Reloader:
    """Re-reads what the server was started with: *config_file* (None: defaults) and the command line's
    *overrides*, which still win over the file."""

    def __init__(
        self,
        server: Server,
        notifier: ServiceNotifier,
        config_file: Path | None,
        overrides: Mapping[str, Any] | None,
    ) -> None:
        self.server = server
        self.notifier = notifier
        self.config_file = config_file
        self.overrides = dict(overrides or {})
        self._fingerprint = certificate_fingerprint(server.pki.server_cert)

    def reload(self) -> bool:
        """One SIGHUP; True when the new configuration is in force."""
        self.notifier.reloading()
        try:
            changed = self._reload()
        except (ValueError, OSError, ssl.SSLError, UserStoreError) as exc:
            log.warning("event=reload_failed reason=%s", _quoted(f"{exc.__class__.__name__}: {exc}"))
            self.notifier.ready("serving; reload failed, the old configuration stays")
            return False
        log.info("event=reloaded changed=%s", ",".join(changed) or "none")
        self.notifier.ready("serving")
        return True

    def _reload(self) -> list[str]:
        server = self.server
        # read and check everything before changing anything
        plan = reload_plan(server.settings, load_settings(self.config_file, self.overrides))
        server_ssl_context(server.pki)  # the certificate and key load and match
        fingerprint = certificate_fingerprint(server.pki.server_cert)
        # UserStoreError: the users read before stay
        users_changed = server.users.reload() if server.users is not None else False
        if plan.needs_restart:
            log.warning("event=reload_needs_restart settings=%s", ",".join(plan.needs_restart))
        self._apply(plan)
        changed = list(plan.changed)
        if users_changed:
            changed.append("users")
        transports = server.transports
        if transports.server_ssl is not None:
            reload_server_certificate(transports.server_ssl, server.pki)
        transports.client_ssl = client_ssl_context(server.pki.ca_cert)
        if fingerprint != self._fingerprint:
            self._fingerprint = fingerprint
            changed.append("certificates")
        return changed

    def _apply(self, plan: ReloadPlan) -> None:
        server, new = self.server, plan.settings
        server.settings = new
        if "log_level" in plan.changed:
            logging.getLogger().setLevel(new.log_level.upper())
        if server.users is not None and any(name in plan.changed for name in _AUTH):
            server.endpoint.auth = authenticator_for(new, server.users)
        throttle = server.endpoint.config.throttle
        throttle.max_failures, throttle.block = new.auth_max_failures, new.auth_block_seconds
        if server.focus is not None and ("downlink" in plan.changed or "rekey" in plan.changed):
            server.focus.keying.configure(DownlinkMode.parse(new.downlink), RekeyPolicy.parse(new.rekey))
