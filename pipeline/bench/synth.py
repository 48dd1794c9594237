"""Synthetic data subjects: seeded, vectorised, realistic enough to exercise every rule.

Wide layout: ``subject_key, email, ecid, phone, crm_id, action, regulation, received_at``.
Emails look like real ones, ECIDs have 38 digits, phones are E.164, CRM ids are custom
identities (map ``crm_id`` in ``[input.columns]``, else the column is ignored). A share
``dirty`` of rows breaks one rule each (bad email, bad ECID, no identity, unknown action or
regulation, empty key, a too long value, a repeat of an earlier subject with another action),
and a few rows repeat an earlier row exactly (they merge, they are not rejected).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

COLUMNS = (
    "subject_key", "email", "ecid", "phone", "crm_id", "action", "regulation", "received_at",
)  # fmt: skip
_FIRST = np.array(
    [
        "anna",
        "ben",
        "chloe",
        "dev",
        "elif",
        "femi",
        "gus",
        "hana",
        "ivan",
        "jo",
        "kai",
        "lena",
        "mo",
        "nora",
        "omar",
        "pia",
        "raj",
        "sara",
        "tom",
        "yuki",
    ]
)
_LAST = np.array(
    [
        "smith",
        "jones",
        "garcia",
        "muller",
        "rossi",
        "kim",
        "nguyen",
        "silva",
        "dubois",
        "novak",
        "okafor",
        "larsen",
        "cohen",
        "tanaka",
        "walsh",
        "khan",
    ]
)
_DOMAINS = np.array(["example.com", "mail.example.org", "acme.test", "corp.example.net"])
_ACTIONS = np.array(["access", "access", "access", "delete", "access+delete"])
_REGULATIONS = np.array(["gdpr", "gdpr", "ccpa", "cpra_ca_usa", "lgpd_bra"])
DIRTY_KINDS = (
    "bad_email", "bad_ecid", "no_identity", "unknown_action", "unknown_regulation",
    "empty_key", "too_long", "conflict",
)  # fmt: skip


def _digits(rng: np.random.Generator, n: int, width: int) -> pa.Array:
    low = pa.array(rng.integers(0, 10 ** min(width, 18), n, dtype=np.int64)).cast(pa.string())
    padded = pc.utf8_lpad(low, min(width, 18), "0")
    if width <= 18:
        return padded
    high = _digits(rng, n, width - 18)
    return pc.binary_join_element_wise(high, padded, "")


def _pick(rng: np.random.Generator, words: np.ndarray, n: int) -> pa.Array:
    return pa.array(words[rng.integers(0, len(words), n)])


def org_names(orgs: int) -> tuple[str, ...]:
    """The ``[[orgs]]`` names of a synthetic file of ``orgs`` orgs: ``org01``, ``org02``..."""
    return tuple(f"org{i:02d}" for i in range(1, orgs + 1))


def subjects(
    n: int, *, seed: int = 7, dirty: float = 0.05, start: int = 0, orgs: int = 0
) -> pa.Table:
    """``n`` wide-layout rows, rows ``start``.. of the stream for ``seed`` (all strings).

    With ``orgs``, a last column ``org`` names one of :func:`org_names` (uniformly; one row
    in 20 leaves it empty: the default org). The other columns do not depend on ``orgs``."""
    rng = np.random.default_rng([seed, start])
    numbers = pa.array(np.arange(start, start + n, dtype=np.int64)).cast(pa.string())
    key = pc.binary_join_element_wise("S", pc.utf8_lpad(numbers, 9, "0"), "")
    email = pc.binary_join_element_wise(
        _pick(rng, _FIRST, n),
        ".",
        _pick(rng, _LAST, n),
        numbers,
        "@",
        _pick(rng, _DOMAINS, n),
        "",
    )
    ecid = _digits(rng, n, 38)
    phone = pc.binary_join_element_wise("+1", _digits(rng, n, 10), "")
    crm = pc.binary_join_element_wise("CRM-", _digits(rng, n, 8), "")
    empty = pa.scalar("", pa.string())
    ecid = pc.if_else(pa.array(rng.random(n) < 0.6), ecid, empty)
    phone = pc.if_else(pa.array(rng.random(n) < 0.3), phone, empty)
    crm = pc.if_else(pa.array(rng.random(n) < 0.2), crm, empty)
    action = _pick(rng, _ACTIONS, n)
    regulation = _pick(rng, _REGULATIONS, n)
    days = rng.integers(0, 40, n).astype("timedelta64[D]")
    received = pa.array(np.datetime64("2026-09-01") + days).cast(pa.string())
    cols = {
        "subject_key": key, "email": email, "ecid": ecid, "phone": phone, "crm_id": crm,
        "action": action, "regulation": regulation, "received_at": received,
    }  # fmt: skip
    kind = np.where(rng.random(n) < dirty, rng.integers(0, len(DIRTY_KINDS), n), -1)
    if orgs:  # its own generator: the other columns stay as they are
        org_rng = np.random.default_rng([seed, start, orgs])
        names = np.array(["", *org_names(orgs)])
        code = np.where(org_rng.random(n) < 0.05, 0, org_rng.integers(1, orgs + 1, n))
        cols["org"] = pa.array(names[code])
    _dirty(cols, kind, rng, n)  # a repeated row repeats its org too
    return pa.table(cols)


def _dirty(cols: dict[str, pa.Array], kind: np.ndarray, rng: np.random.Generator, n: int) -> None:
    def mask(name: str) -> pa.Array:
        return pa.array(kind == DIRTY_KINDS.index(name))

    empty = pa.scalar("", pa.string())
    cols["email"] = pc.if_else(
        mask("bad_email"), pc.replace_substring(cols["email"], "@", " at "), cols["email"]
    )
    cols["ecid"] = pc.if_else(mask("bad_ecid"), "12AB34CD", cols["ecid"])
    for name in ("email", "ecid", "phone", "crm_id"):
        cols[name] = pc.if_else(mask("no_identity"), empty, cols[name])
    cols["action"] = pc.if_else(mask("unknown_action"), "erase", cols["action"])
    cols["regulation"] = pc.if_else(mask("unknown_regulation"), "gdrp", cols["regulation"])
    cols["subject_key"] = pc.if_else(mask("empty_key"), empty, cols["subject_key"])
    cols["ecid"] = pc.if_else(mask("too_long"), "9" * 300, cols["ecid"])
    # a conflict repeats the key of an earlier row with another action; an exact repeat
    # (one row in 200) copies an earlier row whole and merges into it
    earlier = np.maximum(np.arange(n) - rng.integers(1, 50, n), 0)
    conflict = kind == DIRTY_KINDS.index("conflict")
    repeat = (rng.random(n) < 0.005) & (kind < 0) & (np.arange(n) > 0)
    source = np.where(conflict | repeat, earlier, np.arange(n))
    for name in cols:
        if name != "action":
            cols[name] = pc.take(cols[name], pa.array(source))
    flipped = pc.if_else(
        pc.equal(pc.take(cols["action"], pa.array(earlier)), "delete"), "access", "delete"
    )
    cols["action"] = pc.if_else(
        pa.array(conflict),
        flipped,
        pc.if_else(pa.array(repeat), pc.take(cols["action"], pa.array(earlier)), cols["action"]),
    )
