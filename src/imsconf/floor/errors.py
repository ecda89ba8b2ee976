"""The one exception received BFCP bytes may raise, carrying the RFC 8855 error code to answer with."""

from __future__ import annotations

from .constants import ErrorCodeValue

__all__ = ["BfcpDecodeError"]


class BfcpDecodeError(Exception):
    """Received bytes are not a valid BFCP message.

    ``code`` is the ERROR-CODE value (RFC 8855 §5.2.6) of the Error message to send back; the header fields
    are filled in when the COMMON-HEADER could be read, so the Error can echo them (RFC 8855 §13.8);
    ``primitive`` lets the receiver avoid answering a broken Error with another Error.
    ``unknown_attributes`` lists the types for an "Unknown Mandatory Attribute" error.  ``fatal`` means the
    octet stream cannot be resynchronised (a broken header or a size cap): the connection must be closed.
    """

    def __init__(
        self,
        code: ErrorCodeValue,
        reason: str,
        *,
        conference_id: int | None = None,
        transaction_id: int | None = None,
        user_id: int | None = None,
        primitive: int | None = None,
        unknown_attributes: tuple[int, ...] = (),
        fatal: bool = False,
    ) -> None:
        super().__init__(f"{code.name}: {reason}")
        self.code = code
        self.reason = reason
        self.conference_id = conference_id
        self.transaction_id = transaction_id
        self.user_id = user_id
        self.primitive = primitive
        self.unknown_attributes = unknown_attributes
        self.fatal = fatal

    def with_header(
        self, conference_id: int, transaction_id: int, user_id: int, primitive: int
    ) -> BfcpDecodeError:
        """The same error with the COMMON-HEADER fields of the offending message."""
        return BfcpDecodeError(
            self.code,
            self.reason,
            conference_id=conference_id,
            transaction_id=transaction_id,
            user_id=user_id,
            primitive=primitive,
            unknown_attributes=self.unknown_attributes,
            fatal=self.fatal,
        )
