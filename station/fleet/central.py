"""The fleet's log in PostgreSQL: its schema (through migrations), its roles, and the questions asked of it.

Every station's chained rows land in one append-only table, ``fleet_rows``, keyed by
``(station_id, table_name, row_id)``, each with its ``prev_hash``/``row_hash`` and the row itself as the
canonical JSON the station sent (``payload``), so the fleet verifies every station's chains with the very
function the station's own audit uses (:func:`station.log.chain.verify_chain`). Views read the columns an
auditor or the desk needs out of the payload (``fleet_screenings`` ...).

Schema. :data:`MIGRATIONS` in order, each recorded in ``schema_migrations`` in the transaction that applies
it, under an advisory lock (two services starting at once do not race): :func:`migrate` is run at every
start and does nothing when the schema is current. A role that may not create tables (the ingester's)
only checks that the schema is current (:func:`ensure_schema`).

Roles (group roles, ``NOLOGIN``: give a login role membership, ``CREATE ROLE ingester LOGIN PASSWORD ...
IN ROLE fleet_ingester``):

* ``fleet_ingester``: INSERT on ``fleet_rows``, ``fleet_snapshots`` and ``fleet_anchors``, SELECT of their key
  and hash columns only (``ON CONFLICT`` and the high-water mark need them); it cannot read the payloads or
  the images.
* ``fleet_auditor``: SELECT on everything; INSERT only on ``fleet_exports`` (every export is recorded).
* ``fleet_desk``: SELECT on everything; INSERT only on ``fleet_desk_acks``.

Nobody may UPDATE or DELETE: no role is granted it, PUBLIC holds nothing, and a trigger refuses UPDATE,
DELETE and TRUNCATE on the three tables, on ``fleet_snapshots`` (the alarm images of the stations that
share them) and on ``fleet_anchors`` (the chain anchors stations published, see
:mod:`station.fleet.protocol`) even for their owner. A superuser can still disable the trigger
(``ALTER TABLE ... DISABLE TRIGGER``) and edit a row; that is what ``station fleet verify`` catches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from station.errors import StationError
from station.log.chain import GENESIS

ROLES = ("fleet_ingester", "fleet_auditor", "fleet_desk")
APPEND_ONLY = ("fleet_rows", "fleet_exports", "fleet_desk_acks")
#: An arbitrary constant: the advisory lock every migrating session takes first.
_LOCK = 0x5F1EE7


def _m001_fleet_log(cur: Any) -> None:
    """The fleet log, its append-only guard, the exports and desk acknowledgements made from it."""
    cur.execute("""
        CREATE TABLE fleet_rows (
            station_id  text   NOT NULL,
            site        text   NOT NULL,
            table_name  text   NOT NULL,
            row_id      bigint NOT NULL,
            prev_hash   text   NOT NULL,
            row_hash    text   NOT NULL,
            wall_time   text   NOT NULL,
            payload     text   NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (station_id, table_name, row_id)
        )""")
    cur.execute("""
        CREATE TABLE fleet_exports (
            id          bigserial PRIMARY KEY,
            made_at     timestamptz NOT NULL DEFAULT now(),
            db_user     text NOT NULL DEFAULT current_user,
            operator    text NOT NULL,
            filters     text NOT NULL,
            format      text NOT NULL,
            stations    text NOT NULL,
            row_count   bigint NOT NULL,
            path        text NOT NULL,
            sha256      text NOT NULL
        )""")
    cur.execute("""
        CREATE TABLE fleet_desk_acks (
            id            bigserial PRIMARY KEY,
            made_at       timestamptz NOT NULL DEFAULT now(),
            db_user       text NOT NULL DEFAULT current_user,
            site          text NOT NULL,
            station_id    text NOT NULL,
            screening_id  bigint NOT NULL,
            action        text NOT NULL,
            operator      text NOT NULL,
            note          text NOT NULL DEFAULT '',
            thermometer_c double precision
        )""")
    cur.execute("""
        CREATE FUNCTION fleet_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the fleet log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
        END $$""")
    for table in APPEND_ONLY:
        _append_only(cur, table)
    p = "(payload::jsonb)"
    cur.execute(f"""
        CREATE VIEW fleet_screenings AS
        SELECT r.station_id, r.site, r.row_id AS screening_id, r.wall_time,
               {p}->>'level' AS level,
               ({p}->>'body_c')::double precision AS body_c,
               ({p}->>'u95_c')::double precision AS u95_c,
               ({p}->>'skin_c')::double precision AS skin_c,
               {p}->>'site' AS skin_site,
               ({p}->>'alarm_id')::bigint AS alarm_id,
               {p}->>'quality' AS quality,
               {p}->>'calibration_id' AS calibration_id,
               ({p}->>'blackbody_error_c')::double precision AS blackbody_error_c,
               r.payload, r.received_at
        FROM fleet_rows r WHERE r.table_name = 'screenings'""")
    cur.execute(f"""
        CREATE VIEW fleet_acknowledgements AS
        SELECT r.station_id, r.site, r.row_id AS acknowledgement_id, r.wall_time,
               ({p}->>'screening_id')::bigint AS screening_id,
               {p}->>'action' AS action,
               ({p}->>'thermometer_c')::double precision AS thermometer_c,
               {p}->>'note' AS note,
               {p}->>'operator' AS operator,
               r.payload, r.received_at
        FROM fleet_rows r WHERE r.table_name = 'acknowledgements'""")
    cur.execute(f"""
        CREATE VIEW fleet_system_events AS
        SELECT r.station_id, r.site, r.row_id AS event_id, r.wall_time,
               {p}->>'kind' AS kind, {p}->>'detail' AS detail, r.payload, r.received_at
        FROM fleet_rows r WHERE r.table_name = 'system_events'""")
    cur.execute(f"""
        CREATE VIEW fleet_station_exports AS
        SELECT r.station_id, r.site, r.row_id AS export_id, r.wall_time,
               {p}->>'operator' AS operator, {p}->>'filters' AS filters, {p}->>'format' AS format,
               ({p}->>'row_count')::bigint AS row_count, {p}->>'sha256' AS sha256, r.payload, r.received_at
        FROM fleet_rows r WHERE r.table_name = 'exports'""")


def _m002_roles(cur: Any) -> None:
    """The three group roles and what each may do; nothing for PUBLIC, UPDATE/DELETE for nobody."""
    for role in ROLES:
        cur.execute(f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} NOLOGIN; END IF;
            END $$""")
    tables = ("schema_migrations", *APPEND_ONLY, "fleet_screenings", "fleet_acknowledgements",
              "fleet_system_events", "fleet_station_exports")
    for table in tables:
        cur.execute(f"REVOKE ALL ON {table} FROM PUBLIC, {', '.join(ROLES)}")
    cur.execute("GRANT SELECT ON schema_migrations TO fleet_ingester, fleet_auditor, fleet_desk")
    cur.execute("GRANT INSERT, SELECT (station_id, site, table_name, row_id, row_hash) ON fleet_rows "
                "TO fleet_ingester")
    for role, own in (("fleet_auditor", "fleet_exports"), ("fleet_desk", "fleet_desk_acks")):
        cur.execute(f"GRANT SELECT ON {', '.join(t for t in tables if t != 'schema_migrations')} TO {role}")
        cur.execute(f"GRANT INSERT ON {own} TO {role}")
        cur.execute(f"GRANT USAGE ON SEQUENCE {own}_id_seq TO {role}")


def _append_only(cur: Any, table: str) -> None:
    """Refuse UPDATE, DELETE and TRUNCATE on ``table`` for everyone, its owner too (``fleet_refuse_change``)."""
    cur.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION fleet_refuse_change()")
    cur.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION fleet_refuse_change()")


def _m003_snapshots(cur: Any) -> None:
    """Alarm images of the stations that share them, append-only like the rows (the same trigger)."""
    cur.execute("""
        CREATE TABLE fleet_snapshots (
            station_id   text   NOT NULL,
            screening_id bigint NOT NULL,
            kind         text   NOT NULL,
            sha256       text   NOT NULL,
            image        bytea  NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (station_id, screening_id, kind)
        )""")
    _append_only(cur, "fleet_snapshots")
    cur.execute(f"REVOKE ALL ON fleet_snapshots FROM PUBLIC, {', '.join(ROLES)}")
    cur.execute("GRANT INSERT, SELECT (station_id, screening_id, kind, sha256) ON fleet_snapshots TO fleet_ingester")
    cur.execute("GRANT SELECT ON fleet_snapshots TO fleet_auditor, fleet_desk")


def _m004_anchors(cur: Any) -> None:
    """Stations' chain anchors (what retention deleted before the fleet got it), append-only like the rows."""
    cur.execute("""
        CREATE TABLE fleet_anchors (
            station_id  text   NOT NULL,
            table_name  text   NOT NULL,
            row_id      bigint NOT NULL,
            row_hash    text   NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (station_id, table_name, row_id)
        )""")
    _append_only(cur, "fleet_anchors")
    cur.execute(f"REVOKE ALL ON fleet_anchors FROM PUBLIC, {', '.join(ROLES)}")
    cur.execute("GRANT INSERT, SELECT ON fleet_anchors TO fleet_ingester")
    cur.execute("GRANT SELECT ON fleet_anchors TO fleet_auditor, fleet_desk")
    # the mark trusts an anchor only when the row after it follows it
    cur.execute("GRANT SELECT (prev_hash) ON fleet_rows TO fleet_ingester")


#: ``(version, name, apply)`` in order; a migration, once released, is never edited: add the next one.
MIGRATIONS: tuple[tuple[int, str, Callable[[Any], None]], ...] = (
    (1, "fleet_log", _m001_fleet_log),
    (2, "roles", _m002_roles),
    (3, "snapshots", _m003_snapshots),
    (4, "anchors", _m004_anchors),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def connect(dsn: str, *, autocommit: bool = False) -> Any:
    """A psycopg connection to ``dsn``; a malformed or unreachable DSN as one line (:class:`StationError`)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise StationError(f"--postgres {dsn!r}: not a PostgreSQL DSN ({_first_line(exc)})") from None
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        raise StationError(f"PostgreSQL {_redact(dsn)}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        parts = conninfo_to_dict(dsn)
        parts.pop("password", None)
        return make_conninfo(**parts)
    except Exception:  # noqa: BLE001 - a message must never fail
        return "(DSN)"


def applied_versions(conn: Any) -> set[int]:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not cur.fetchone()[0]:
            return set()
        cur.execute("SELECT version FROM schema_migrations")
        return {int(r[0]) for r in cur.fetchall()}


def migrate(conn: Any) -> list[str]:
    """Apply the migrations not yet applied, in order, each in its own transaction; their names.

    Idempotent: run at every start, it returns ``[]`` once the schema is current. Needs a role that may
    create tables and roles (the database's owner with CREATEROLE, or a superuser).
    """
    import psycopg

    done: list[str] = []
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                        "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for version, name, apply in MIGRATIONS:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                cur.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (version,))
                if cur.fetchone():
                    continue
                apply(cur)
                cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                done.append(f"{version:03d}_{name}")
    except psycopg.Error as exc:
        raise StationError(f"fleet schema: migration failed ({_first_line(exc)}); run `station fleet migrate` as "
                           "the database's owner") from None
    return done


def ensure_schema(conn: Any) -> None:
    """Migrate when this role may; otherwise require the schema to be current (one line saying what to run)."""
    import psycopg

    try:
        versions = applied_versions(conn)
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        raise StationError(f"fleet schema: cannot read it ({_first_line(exc)})") from None
    if SCHEMA_VERSION in versions and all(v in versions for v, _n, _a in MIGRATIONS):
        return
    migrate(conn)


# ---------------------------------------------------------------------- questions asked of the fleet log
def payload_text(row: Mapping[str, Any]) -> str:
    """A row as the fleet log keeps it: canonical JSON (sorted keys, no spaces), every column."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


#: The contiguous high-water mark above ``base``: ``row_id = base + rank`` holds exactly for the rows with no
#: gap below them (row ids are unique and ascending), so the largest such row is the mark.
_HWM_SQL = """
    SELECT row_id, row_hash FROM (
        SELECT row_id, row_hash, row_number() OVER (ORDER BY row_id) AS rank
        FROM fleet_rows WHERE station_id = %(station)s AND table_name = %(table)s AND row_id > %(base)s
    ) s WHERE row_id = %(base)s + rank ORDER BY row_id DESC LIMIT 1"""


def high_water_mark(cur: Any, station: str, table: str, base: tuple[int, str] = (0, GENESIS)) -> tuple[int, str]:
    """``(row_id, row_hash)`` of the highest row of ``station``'s ``table`` with every row below it held.

    ``base`` is a mark already known (the rows up to it are held; the log never loses a row), so each
    call reads only the rows above it. ``(0, GENESIS)`` when row 1 is missing.
    """
    cur.execute(_HWM_SQL, {"station": station, "table": table, "base": base[0]})
    found = cur.fetchone()
    return (int(found[0]), str(found[1])) if found else base


def lowest_anchor(cur: Any, station: str, table: str) -> tuple[int, str] | None:
    """``(row_id, row_hash)`` of the lowest anchor ``station`` published for ``table`` (the one it had when it
    joined the fleet: the rows up to it were deleted before they could be sent), or None."""
    cur.execute("SELECT row_id, row_hash FROM fleet_anchors WHERE station_id = %s AND table_name = %s "
                "ORDER BY row_id LIMIT 1", (station, table))
    found = cur.fetchone()
    return (int(found[0]), str(found[1])) if found else None


def anchored_base(cur: Any, station: str, table: str) -> tuple[int, str]:
    """Where ``station``'s ``table`` mark counts from: its lowest anchor when the row after it is held and
    follows it (its ``prev_hash`` is the anchor's hash); ``(0, GENESIS)`` otherwise (no anchor, or one not
    trusted)."""
    anchor = lowest_anchor(cur, station, table)
    if anchor is None:
        return 0, GENESIS
    cur.execute("SELECT prev_hash FROM fleet_rows WHERE station_id = %s AND table_name = %s AND row_id = %s",
                (station, table, anchor[0] + 1))
    found = cur.fetchone()
    return anchor if found is not None and str(found[0]) == anchor[1] else (0, GENESIS)


def stations_tables(cur: Any) -> list[tuple[str, str, str]]:
    """``(site, station_id, table_name)`` of every station table the log holds rows of."""
    cur.execute("SELECT DISTINCT site, station_id, table_name FROM fleet_rows ORDER BY station_id, table_name")
    return [(str(a), str(b), str(c)) for a, b, c in cur.fetchall()]


@dataclass(frozen=True)
class FleetBreak:
    """Where one station's table first fails in the fleet log, in words an auditor can act on."""

    station: str
    site: str
    table: str
    row_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"row {self.row_id}" if self.row_id is not None else "the table"
        return f"station {self.station} (site {self.site}) {self.table} {where}: {self.problem}"


def _rows(conn: Any, station: str, table: str) -> Iterator[dict[str, Any]]:
    """One station table's rows in ``row_id`` order, as verify_chain reads them (streamed)."""
    with conn.cursor(name="fleet_verify") as cur:
        cur.itersize = 2000
        cur.execute("SELECT row_id, prev_hash, row_hash, payload FROM fleet_rows WHERE station_id = %s AND "
                    "table_name = %s ORDER BY row_id", (station, table))
        for row_id, prev, digest, payload in cur:
            try:
                row = json.loads(payload)
            except ValueError:
                row = {"id": row_id, "payload": payload}  # fails its hash: reported as edited
            if not isinstance(row, dict):
                row = {"id": row_id, "payload": payload}
            # the columns beside the payload are evidence too: a key or hash edited there must show
            if row.get("id") != row_id or row.get("prev_hash") != prev or row.get("row_hash") != digest:
                row = {**row, "id": row_id, "prev_hash": prev, "row_hash": digest, "_columns_differ": True}
            yield row


def verify_station_table(conn: Any, site: str, station: str, table: str) -> tuple[int, FleetBreak | None]:
    """``(rows read, first break or None)`` for one station's table: its chain, and any gap below its newest row.

    Both count from the station's lowest anchor (:func:`lowest_anchor`) when the fleet holds no row at or
    below it: the rows the station deleted before it joined; the first row must then follow the anchor.
    """
    from station.log.chain import verify_chain

    count = 0
    gap: FleetBreak | None = None
    with conn.cursor() as cur:
        anchor = lowest_anchor(cur, station, table)
        if anchor is not None:
            cur.execute("SELECT MIN(row_id) FROM fleet_rows WHERE station_id = %s AND table_name = %s",
                        (station, table))
            first = cur.fetchone()[0]
            if first is not None and int(first) <= anchor[0]:
                anchor = None  # the fleet holds rows the anchor stands for: verify from the start

    def watched() -> Iterator[dict[str, Any]]:
        nonlocal count, gap
        last = 0 if anchor is None else anchor[0]
        for row in _rows(conn, station, table):
            count += 1
            row_id = int(row["id"])
            if gap is None and row_id != last + 1:
                missing = f"row {last + 1}" if row_id == last + 2 else f"rows {last + 1}-{row_id - 1}"
                gap = FleetBreak(station, site, table, last + 1,
                                 f"{missing} missing below row {row_id}: a gap (never received, or deleted)")
            last = row_id
            yield row

    found = verify_chain(table, watched(), anchor=anchor)  # reads every row unless it breaks, and then stops there
    if gap is not None and (found is None or found.row_id is None or gap.row_id <= found.row_id):
        return count, gap
    if found is not None:
        return count, FleetBreak(station, site, table, found.row_id, found.problem)
    return count, None


def verify_fleet(conn: Any) -> tuple[list[FleetBreak], dict[tuple[str, str], dict[str, int]]]:
    """Every station's chains: the breaks found, and ``{(station, site): {table: rows}}``."""
    with conn.cursor() as cur:
        keys = stations_tables(cur)
    breaks: list[FleetBreak] = []
    counts: dict[tuple[str, str], dict[str, int]] = {}
    with conn.transaction():
        for site, station, table in keys:
            n, found = verify_station_table(conn, site, station, table)
            counts.setdefault((station, site), {})[table] = n
            if found is not None:
                breaks.append(found)
    return breaks, counts
