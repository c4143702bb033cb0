"""Time the public benchmark queries in DuckDB, in memory, on a lineitem CSV.

Usage: python3 duckdb_lineitem.py LINEITEM_CSV QUERIES_SQL [RUNS]

Prints one line per query, "P1 <median ms>", and a last line "DUCKDB_MS=a,b,c,d,e,f" that
the Rhizome benchmark reads to print its ratios against this run.
"""
import statistics
import sys
import time

import duckdb

DDL = """CREATE TABLE lineitem (
    l_orderkey BIGINT, l_partkey BIGINT, l_suppkey BIGINT, l_linenumber INT,
    l_quantity DECIMAL(15,2), l_extendedprice DECIMAL(15,2), l_discount DECIMAL(15,2),
    l_tax DECIMAL(15,2), l_returnflag VARCHAR(1), l_linestatus VARCHAR(1),
    l_shipdate DATE, l_commitdate DATE, l_receiptdate DATE, l_shipinstruct VARCHAR(25),
    l_shipmode VARCHAR(10), l_comment VARCHAR(44))"""


def queries(path):
    named, name = [], None
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith("-- P"):
            name = line[3:].split(":")[0]
        elif line and not line.startswith("--") and name:
            named.append((name, line))
            name = None
    return named


def main():
    csv, sql, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 5
    con = duckdb.connect()
    con.execute(DDL)
    start = time.perf_counter()
    con.execute(f"INSERT INTO lineitem SELECT * FROM read_csv('{csv}', header=true)")
    print(f"load {time.perf_counter() - start:.2f} s", file=sys.stderr)
    medians = []
    for name, query in queries(sql):
        con.execute(query).fetchall()
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            con.execute(query).fetchall()
            samples.append((time.perf_counter() - start) * 1e3)
        medians.append(statistics.median(samples))
        print(f"{name} {medians[-1]:.3f} ms")
    print("DUCKDB_MS=" + ",".join(f"{m:.3f}" for m in medians))


if __name__ == "__main__":
    main()
