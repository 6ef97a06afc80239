"""What to tell the person in front of the station, from the quality flags of their face.

One message at a time, the one that unblocks the measurement first: while two people stand in the zone
nothing else matters; glasses hide the canthi wherever the person stands; a turned head and the
distance come next; holding still is the last refinement. Pure Python, so it is tested without Qt
and the strings can be replaced by a site's own language in the settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

DEFAULT_GUIDANCE: dict[str, str] = {
    "several_faces": "One person at a time",
    "glasses": "Remove glasses",
    "off_axis": "Look at the camera",
    "too_far": "Step closer",
    "motion": "Hold still",
    "step_closer": "Step closer",
}
PRIORITY = ("several_faces", "glasses", "off_axis", "too_far", "step_closer", "motion")


def guidance_for(quality: Iterable[str], strings: Mapping[str, str] | None = None) -> str | None:
    """The single most useful instruction for these flags, or None when there is nothing to ask.

    ``blackbody_bad`` has no instruction for the person: the window shows a system alarm instead.
    """
    flags = set(quality)
    texts = {**DEFAULT_GUIDANCE, **(strings or {})}
    for flag in PRIORITY:
        if flag in flags:
            return texts[flag]
    return None
