#!/usr/bin/env python3
"""Fast loader for the benchmark's growth runs: copies one authorized order (its row, its ledger
entries and its events) COUNT times under fresh ids and references, in one statement per table,
so that `authcap check` stays clean. Usage: load_orders.py DATABASE TEMPLATE_ORDER_ID COUNT
(DATABASE: sqlite://PATH or postgres://…); copies are numbered from FIRST (default 1) on, so
that loads can follow one another."""
import sqlite3
import subprocess
import sys

database, template, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
first = int(sys.argv[4]) if len(sys.argv) > 4 else 1
postgres = database.startswith(("postgres://", "postgresql://"))


def psql(sql):
    return subprocess.run(["psql", "-qtA", "-v", "ON_ERROR_STOP=1", database, "-c", sql],
                          check=True, capture_output=True, text=True).stdout


def columns(table):
    if postgres:
        out = psql(f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'"
                   " AND table_schema = current_schema() ORDER BY ordinal_position")
        return out.split()
    with sqlite3.connect(database.removeprefix("sqlite://")) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def copy(table, replaced):
    """INSERT … SELECT of the template's rows, one copy per n, with some columns replaced."""
    kept = [c for c in columns(table) if c not in ("seq", "number") and c not in replaced]
    targets = ", ".join(kept + list(replaced))
    values = ", ".join(kept + list(replaced.values()))
    key = "id" if table == "orders" else "order_id"
    last = first + count - 1
    series = ("generate_series(%d, %d) AS n(n)" % (first, last) if postgres
              else "n")
    prefix = "" if postgres else \
        "WITH RECURSIVE n(n) AS (SELECT %d UNION ALL SELECT n + 1 FROM n WHERE n < %d) " % (first, last)
    return (f"{prefix}INSERT INTO {table} ({targets}) SELECT {values} FROM {series}, "
            f"(SELECT * FROM {table} WHERE {key} = '{template}' ORDER BY {'seq' if table != 'orders' else 'number'}) t "
            f"ORDER BY n")


pad = "lpad(n::text, 18, '0')" if postgres else "printf('%018d', n)"
order_id = f"'ord_0000' || {pad}"
statements = [
    copy("orders", {"id": order_id, "reference": f"'load-' || {pad}"}),
    copy("ledger", {"order_id": order_id}),
    copy("events", {"order_id": order_id, "id": f"'evt_0000' || {pad} || '_' || t.seq"}),
]
if postgres:
    psql("BEGIN; " + "; ".join(statements) + "; COMMIT; ANALYZE")
else:
    with sqlite3.connect(database.removeprefix("sqlite://")) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
