"""imsconf.keys: the key authority (SRTP master keys made at the AS) and group-key management.

``authority``: fresh master keys.  ``policy``: downlink mode, rekey policy, timing.  ``epochs``: key epochs
and SSRC allocation.  ``events``: actions (for the focus and the mixer) and events (from them).
``manager``: the per-conference sans-I/O :class:`GroupKeyManager`.
"""

from .authority import MasterKey, new_master_key
from .events import (
    Action,
    DemoteDone,
    DemoteFailed,
    DemoteListener,
    DropListener,
    Event,
    KeyAnswerReceived,
    KeyUseConfirmed,
    KeyUseFailed,
    OfferKey,
    Rekey,
    RetireEpoch,
    SettleListener,
    StopListener,
    SwitchListener,
)
from .manager import Downlink, GroupKeyManager, KeySnapshot, ListenerState, RekeyRecord
from .policy import DownlinkMode, KeyManagerConfig, PolicySyntaxError, RekeyPolicy

__all__ = [
    "Action",
    "DemoteDone",
    "DemoteFailed",
    "DemoteListener",
    "Downlink",
    "DownlinkMode",
    "DropListener",
    "Event",
    "GroupKeyManager",
    "KeyAnswerReceived",
    "KeyManagerConfig",
    "KeySnapshot",
    "KeyUseConfirmed",
    "KeyUseFailed",
    "ListenerState",
    "MasterKey",
    "OfferKey",
    "PolicySyntaxError",
    "Rekey",
    "RekeyPolicy",
    "RekeyRecord",
    "RetireEpoch",
    "SettleListener",
    "StopListener",
    "SwitchListener",
    "new_master_key",
]
