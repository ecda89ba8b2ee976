"""Where the focus is put together: its feature parts, who each one talks to, and their settings.

The core (:class:`imsconf.focus.core.Focus`) builds nothing itself: it calls the factory made here once, in
its constructor, with its port, its leg table and its inbox. Tests and benchmarks use :func:`assemble_focus`
too, so every focus in the tree is wired the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from imsconf.conference.eventinfo import EndpointDetails
from imsconf.conference.registry import ID_BYTES, ConferenceRegistry
from imsconf.floor.server import Policy
from imsconf.focus.chat import FocusChat
from imsconf.focus.conference_control import ConferenceControl, ControlPort
from imsconf.focus.config import FocusConfig
from imsconf.focus.core import Focus
from imsconf.focus.dialout import Dialer
from imsconf.focus.floor_feature import FocusFloor
from imsconf.focus.keying import FocusKeying
from imsconf.focus.legs import Inbox, LegTable
from imsconf.focus.locks import ConferenceLocks
from imsconf.focus.messaging import Messaging
from imsconf.focus.operator import ConferenceOperator
from imsconf.focus.parts import FocusParts, PartsFactory
from imsconf.focus.planned import PlannedConferences, PlannedOptions
from imsconf.focus.presentation import FocusPresentation
from imsconf.focus.recovery import MixerRecovery
from imsconf.focus.routing import Locator
from imsconf.focus.subscriptions import Notifier
from imsconf.focus.windows import BookingWindows, WindowOptions
from imsconf.keys.policy import DownlinkMode, KeyManagerConfig, RekeyPolicy
from imsconf.media.control import MediaControl
from imsconf.usage.records import NullUsageSink, UsageSink

__all__ = ["FocusOptions", "assemble_focus", "focus_parts"]

_NO_DETAILS = EndpointDetails()


@dataclass(frozen=True, slots=True)
class FocusOptions:
    """The parts' settings beyond :class:`FocusConfig`."""

    planned: PlannedOptions | None = None  # serve booked conferences (dial-in by booking, PIN lobby)
    # with planned: dial-out at a booked window's start, the one-minute prompt, the close at its end
    windows: WindowOptions | None = None
    downlink: DownlinkMode = DownlinkMode.PER_PARTICIPANT  # keying of conferences without a booking
    rekey: RekeyPolicy = field(default_factory=RekeyPolicy.both)
    key_config: KeyManagerConfig = field(default_factory=KeyManagerConfig)
    floor_policy: Policy = Policy.CHAIR  # BFCP: chair-controlled floors, or first-come grant
    # the BFCP adapter's transmit: messages the floors produce outside a BFCP event (a leave, a close)
    floor_wake: Callable[[], None] | None = None
    # POSIX time minus the focus's clock: the runtime's clock is monotonic, documents show UTC wall time
    wall_clock_offset: float = 0.0
    # the location service of this server's registrar: dial-outs to a registered AoR go to its binding
    locator: Locator | None = None
    # move every live leg to a new mixer when the separate one is lost and one comes back (re-INVITEs)
    mixer_recovery: bool = True
    # where the usage records of ended legs and conferences go (must return at once)
    usage: UsageSink = field(default_factory=NullUsageSink)
    # session-mode IM (MSRP, RFC 7701): messages replayed to a late joiner, the largest message relayed,
    # plain TCP/MSRP accepted; the MSRP adapter's transmit for octets the chat makes outside an MSRP event
    chat_history: int = 20
    chat_max_message: int = 256 * 1024
    allow_plain_msrp: bool = False
    chat_wake: Callable[[], None] | None = None


def focus_parts(
    config: FocusConfig, registry: ConferenceRegistry, media: MediaControl, options: FocusOptions
) -> PartsFactory:
    def build(port: ControlPort, table: LegTable, inbox: Inbox) -> FocusParts:
        notifier = Notifier(
            table.dialogs,
            details=lambda conf_id, pid: table.details.get(f"{conf_id}.{pid}", _NO_DETAILS),
            focus_uri=lambda conf: conf.uri,
            dialog_shared=lambda dialog_id: dialog_id in table.by_dialog,
            wall_clock_offset=options.wall_clock_offset,
        )
        locks = ConferenceLocks()  # set by the operator, read by every join path
        dialer = Dialer(table, port, config, registry, media, locator=options.locator, locks=locks)
        planned = (
            PlannedConferences(table, port, config, registry, media, inbox, options.planned, locks=locks)
            if options.planned is not None
            else None
        )
        windows = (
            BookingWindows(
                table,
                port,
                registry,
                planned,
                dialer,
                media,
                options.windows,
                wall_clock_offset=options.wall_clock_offset,
            )
            if planned is not None and options.windows is not None
            else None
        )
        # floor changes switch the video and reach the event package (the presentation part, via the core)
        floor = FocusFloor(
            media, policy=options.floor_policy, on_change=port.floor_changed, wake=options.floor_wake
        )
        keying = FocusKeying(
            table,
            port,
            registry,
            media,
            inbox,
            booked=planned,
            downlink=options.downlink,
            rekey=options.rekey,
            config=options.key_config,
        )
        operator = ConferenceOperator(
            table,
            port,
            config,
            registry,
            media,
            inbox,
            dialer,
            keying,
            locks,
            lobby=planned,
            usage=options.usage,
            wall_clock_offset=options.wall_clock_offset,
        )
        presentation = FocusPresentation(port, registry, media, floor, inbox)
        recovery = (
            MixerRecovery(table, port, media, inbox, keying, lobby=planned, mix=operator, video=presentation)
            if options.mixer_recovery
            else None
        )
        chat = FocusChat(
            history=options.chat_history,
            max_message=options.chat_max_message,
            allow_plain=options.allow_plain_msrp,
            wall_clock_offset=options.wall_clock_offset,
            wake=options.chat_wake,
            on_relayed=operator.message_relayed,
        )
        control = ConferenceControl(table, port, config, registry, notifier, dialer)
        return FocusParts(
            control=control,
            dialer=dialer,
            floor=floor,
            presentation=presentation,
            keying=keying,
            operator=operator,
            messaging=Messaging(
                table,
                registry,
                config,
                ConferenceControl.requester,
                control.conference,
                wall_clock_offset=options.wall_clock_offset,
                on_relayed=operator.message_relayed,
            ),
            planned=planned,
            recovery=recovery,
            windows=windows,
            chat=chat,
        )

    return build


def assemble_focus(
    config: FocusConfig,
    media: MediaControl,
    options: FocusOptions | None = None,
    *,
    registry: ConferenceRegistry | None = None,
    wake: Callable[[], None] | None = None,
) -> Focus:
    """A focus over *media* with every feature part; *wake* is the runtime's flush (see :class:`Focus`)."""
    options = options if options is not None else FocusOptions()
    if registry is None:
        registry = ConferenceRegistry(
            config.conference_host, scheme="sip", token=config.conference_ids(ID_BYTES)
        )
    return Focus(config, media, registry, focus_parts(config, registry, media, options), wake=wake)
