"""Planned conferences (booked ahead, joined by dial-in with a PIN): validated bookings in SQLite and a CLI
(the HTTP API over them is ``imsconf.web.bookings``).

For the focus (dial-in)::

    booking, state = store.window_status(request_uri, now)   # WindowState.OPEN / EARLY / ENDED / ...
    booking.capacity, booking.invitees, booking.downlink, booking.rekey, booking.allow_pin_in_uri
    store.verify_pin(booking.id, digits)  or  booking.verify_pin(digits)   # scrypt: run off the loop
    pin_from_uri(request_uri)                                # only if booking.allow_pin_in_uri
"""

from .model import (
    Booking,
    BookingError,
    DownlinkMode,
    InvalidBooking,
    Invitee,
    InviteeRole,
    RekeyPolicy,
    WindowState,
    booking_from_request,
    booking_to_json,
    conference_key,
    pin_from_uri,
)
from .store import BookingConflict, BookingStore, BookingStoreError

__all__ = [
    "Booking",
    "BookingConflict",
    "BookingError",
    "BookingStore",
    "BookingStoreError",
    "DownlinkMode",
    "InvalidBooking",
    "Invitee",
    "InviteeRole",
    "RekeyPolicy",
    "WindowState",
    "booking_from_request",
    "booking_to_json",
    "conference_key",
    "pin_from_uri",
]
