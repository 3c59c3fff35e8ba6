"""A page of one list's members in (updated_us, id) order, at a cost that stays bounded.

The list index is keyed (list, contact), not by update time, so a page can be found two ways:
read every member of the list and sort them (what SQLite's planner picks without statistics;
a list of 1,000,000 members cost 566 ms a page), or walk the contacts in page order and keep
the members (a few contacts a page when the list holds a fair share of them; the whole table
when it holds few). Neither is right for every list, and an index by update time per list
would cost every contact write a page more. So: a list with fewer members than `SCAN` is
sorted (at most `SCAN` look-ups); a larger one is walked for `SCAN` contacts at most, and
only when that walk did not fill the page are the members after it sorted. A page then costs
at most about twice the sort, and a page of a large, dense list costs its own rows.
"""

from __future__ import annotations

import sqlite3

#: Contacts walked in page order before sorting the list's remaining members instead; also
#: the member count below which the list is sorted at once. 1,000 look-ups take ~0.3-0.9 ms.
SCAN = 1000

_MEMBERS_UP_TO = "SELECT count(*) FROM (SELECT 1 FROM contact_lists WHERE list = ? LIMIT ?)"
_NTH_AFTER = (
    "SELECT updated_us, id FROM contacts WHERE (updated_us, id) > (?, ?) "
    "ORDER BY updated_us, id LIMIT 1 OFFSET ?"
)
# Membership is checked on the covering (updated_us, id) index; only the page's rows are read.
_WALK = (
    "SELECT c.data FROM ("
    " SELECT updated_us, id FROM contacts WHERE (updated_us, id) > (?, ?) {upto}"
    " AND EXISTS (SELECT 1 FROM contact_lists l WHERE l.list = ? AND l.contact_id = id)"
    " ORDER BY updated_us, id LIMIT ?"
    ") s JOIN contacts c ON c.id = s.id ORDER BY s.updated_us, s.id"
)
# CROSS JOIN keeps the members as the outer loop whatever statistics the file carries.
_SORT = (
    "SELECT c.data FROM contact_lists l CROSS JOIN contacts c ON c.id = l.contact_id "
    "WHERE l.list = ? AND (c.updated_us, c.id) > (?, ?) "
    "ORDER BY c.updated_us, c.id LIMIT ?"
)


def list_page(
    db: sqlite3.Connection, list_name: str, after: tuple[int, str], limit: int
) -> list[bytes]:
    """Encoded contacts of `list_name` after `after` in (updated_us, id) order, at most `limit`."""
    members = db.execute(_MEMBERS_UP_TO, (list_name, SCAN)).fetchone()[0]
    if members < SCAN:
        return [r[0] for r in db.execute(_SORT, (list_name, after[0], after[1], limit))]
    last = db.execute(_NTH_AFTER, (after[0], after[1], SCAN - 1)).fetchone()
    if last is None:  # fewer than SCAN contacts left: the walk reaches the end
        walk = _WALK.format(upto="")
        return [r[0] for r in db.execute(walk, (after[0], after[1], list_name, limit))]
    walk = _WALK.format(upto="AND (updated_us, id) <= (?, ?)")
    found = [r[0] for r in db.execute(walk, (*after, *last, list_name, limit))]
    if len(found) == limit:
        return found
    # A sparse stretch: every member up to `last` is in `found`; sort the ones after it.
    rest = db.execute(_SORT, (list_name, last[0], last[1], limit - len(found)))
    return found + [r[0] for r in rest]
