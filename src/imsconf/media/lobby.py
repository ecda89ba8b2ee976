"""Floor-controlled mixing, the lobby, prompts, mute and deaf: which legs are mixed when a conference is
floor controlled or a leg is muted, legs that hear a prompt or silence instead of the conference."""

from __future__ import annotations

from collections.abc import Iterable

from .events import (
    MediaEngineError,
    PromptFinished,
    SpeakingChanged,
)
from .legs import SILENCE_FRAMES, LegTable, PromptPlay
from .prompts import get_prompt


class Lobby:
    """Floor control, lobby and prompts: a part of the engine that holds the leg table it works on
    (events go to the table's queue). :class:`~imsconf.media.engine.MediaEngine` delegates to it."""

    def __init__(self, table: LegTable) -> None:
        self.table = table

    def set_floor_control(self, conference_id: str, enabled: bool) -> None:
        """Floor-controlled audio: when enabled only the floor holders' audio is mixed (everyone still
        hears the mix; a holder that speaks hears the others, not itself)."""
        st = self.table.conf_settings(conference_id)
        st.floor = bool(enabled)
        self.table.refresh_mixing(conference_id)

    def set_floor_holders(self, conference_id: str, leg_ids: Iterable[str]) -> None:
        """The legs holding the audio floor (ids of legs not present yet count when they arrive)."""
        st = self.table.conf_settings(conference_id)
        st.holders = frozenset(leg_ids)
        self.table.refresh_mixing(conference_id)

    def set_lobby(self, leg_id: str, in_lobby: bool) -> None:
        """A leg in the lobby is not mixed and does not hear the conference: it hears its prompt (see
        :meth:`play_prompt`) or silence, on its own stream. DTMF from it still arrives as events."""
        leg = self.table.get_leg(leg_id)
        in_lobby = bool(in_lobby)
        if in_lobby == leg.lobby:
            return
        leg.lobby = in_lobby
        if not in_lobby and leg.prompt is None:
            leg.mix_payload = None
        self.table.update_mixing(leg)
        self.table.dirty = True

    def set_leg_mix(self, leg_id: str, *, muted: bool, deaf: bool) -> None:
        """Operator mute and deaf, idempotent; they outlast any later configure or update of the leg.

        ``muted``: the leg's audio is mixed into nobody's (not into the N-1 mixes nor the common mix,
        never chosen as a speaker; a speaking leg stops speaking at once). Its DTMF still arrives as
        events, its RTCP and SRTP are still processed and its counters still count.

        ``deaf``: the leg hears silence instead of the conference, still one packet per tick in its codec
        on its own stream (on a group epoch: its private stream under the epoch key, like a prompt), so
        the phone's jitter buffer and SRTP keep going. Prompts (:meth:`play_prompt`) still play to it."""
        t = self.table
        leg = t.get_leg(leg_id)
        muted, deaf = bool(muted), bool(deaf)
        if muted != leg.muted:
            leg.muted = muted
            if muted and leg.speaking:
                leg.speaking = False
                t.talking.discard(leg)
                t.pending_events.append(SpeakingChanged(leg.leg_id, leg.conference_id, False))
            leg.chosen_tick = -2  # unmuted, it speaks after two consecutive ticks chosen again
            t.update_mixing(leg)
        if deaf != leg.deaf:
            leg.deaf = deaf
            if not deaf and not leg.lobby and leg.prompt is None:
                leg.mix_payload = None
            t.dirty = True

    def play_prompt(self, leg_id: str, name: str | None, loop: bool = True) -> None:
        """Play the named prompt (:mod:`imsconf.media.prompts`) to the leg from its start, replacing any
        prompt playing; ``loop`` repeats it until changed, otherwise :class:`PromptFinished` follows its
        end. Outside the lobby the prompt replaces the conference for that leg while it plays. ``None``
        stops the prompt (silence in the lobby; the conference outside)."""
        leg = self.table.get_leg(leg_id)
        if name is None:
            if leg.prompt is not None:
                leg.prompt = None
                if not leg.lobby and not leg.deaf:
                    leg.mix_payload = None
                self.table.dirty = True
            return
        try:
            prompt = get_prompt(name)
        except KeyError as exc:
            raise MediaEngineError(str(exc.args[0])) from None
        leg.prompt = PromptPlay(prompt, bool(loop))
        self.table.dirty = True

    def play_prompts(self) -> None:
        """Give each lobby/prompt leg this tick's frame (its ``mix_payload``, which wins over the mix)."""
        t = self.table
        for leg in t.prompting:
            play = leg.prompt
            if play is not None:
                frames = play.prompt.frames[leg.codec_id]
                if play.pos >= len(frames):
                    if play.loop:
                        play.pos = 0
                    else:
                        leg.prompt = None
                        t.dirty = True
                        t.pending_events.append(PromptFinished(leg.leg_id, play.prompt.name))
                        play = None
                if play is not None:
                    leg.mix_payload = frames[play.pos]
                    play.pos += 1
                    continue
            if leg.lobby or leg.deaf:
                leg.mix_payload = SILENCE_FRAMES[leg.codec_id]
            elif not leg.speaker:
                leg.mix_payload = None  # the prompt ended: back to the conference
