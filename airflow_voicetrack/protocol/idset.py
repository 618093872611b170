"""The message ids a search window has seen, kept compactly: how a search drops duplicates."""

from __future__ import annotations

from array import array

_HASH_MASK = (1 << 64) - 1


class IdSet:
    """
    The message ids of a window, exactly, at 8 to 16 bytes per id.

    Each id is kept as its 64-bit hash (Python's keyed SipHash) in an open-addressing table of
    unsigned 64-bit slots, instead of the id string and its set entry (about 120 bytes). A hash
    match is confirmed against the exact ids of the two latest pages, where the duplicates that
    paging produces (a message pushed onto the next page by an insertion) are found; a match with an
    older page (re-read pages) is a duplicate unless two distinct ids share a 64-bit hash, a chance
    below one in ten million for a million ids, which the window's count check would then report.

    :param expected: how many ids to size the table for (it grows past that).
    """

    def __init__(self, expected: int = 0) -> None:
        self._count = 0
        self._slots = array("Q")
        self._mask = 0
        self._resize(expected)
        self._recent: list[frozenset[str]] = [frozenset(), frozenset()]
        #: hash matches not confirmed by the latest pages' ids
        self.unconfirmed = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, message_id: object) -> bool:
        key = (hash(message_id) & _HASH_MASK) or 1
        slots, mask = self._slots, self._mask
        index = key & mask
        while (value := slots[index]) != 0:
            if value == key:
                return True
            index = (index + 1) & mask
        return False

    def add_page(self, ids: list[str]) -> list[bool]:
        """
        Add one page's ids, in order.

        :return: for each id, whether it was new (not seen before, nor earlier on this page).
        """
        if 3 * (self._count + len(ids)) > 2 * len(self._slots):
            self._resize(self._count + len(ids))
        slots, mask = self._slots, self._mask
        fresh = []
        older, latest = self._recent
        for message_id in ids:
            key = (hash(message_id) & _HASH_MASK) or 1
            index = key & mask
            while True:
                value = slots[index]
                if value == 0:
                    slots[index] = key
                    fresh.append(True)
                    break
                if value == key:
                    # Confirmed when the id is on the latest pages or earlier on this one.
                    here = ids.index(message_id) < len(fresh)
                    if not here and message_id not in latest and message_id not in older:
                        self.unconfirmed += 1
                    fresh.append(False)
                    break
                index = (index + 1) & mask
        self._count += fresh.count(True)
        self._recent = [latest, frozenset(ids)]
        return fresh

    def _resize(self, expected: int) -> None:
        size = 1024
        while 2 * size < 3 * expected:
            size *= 2
        old = self._slots
        self._slots = array("Q", bytes(8 * size))
        self._mask = size - 1
        slots, mask = self._slots, self._mask
        for key in old:
            if key:
                index = key & mask
                while slots[index]:
                    index = (index + 1) & mask
                slots[index] = key
