"""``make run``: the ``news_ingest`` DAG once, through Airflow, on the shipped seeds/ site.

1. serves ``seeds/site`` on 127.0.0.1 (port 8765 when free, else any free port);
2. writes ``airflow_home/sources.demo.yaml`` from ``seeds/sources.demo.yaml`` ({{BASE}} → the
   site's URL): the site's URL list (undated: the current hour takes them), its RSS feed and its
   sitemap (dated 2022-2024: what a backfill over those hours finds);
3. prepares ``airflow_home/`` as the project's Airflow home: SQLite, ``airflow db migrate``
   once, the ``news_http`` pool;
4. runs ``airflow dags test news_ingest <now>``: the whole DAG, in-process, for the last
   complete hour, into the lake (``--lake``, else ``$NEWSETL_LAKE``, else ``./lake``);
5. prints a summary read from the lake (the run manifest ``_runs/<interval>.json``) and a sample
   ``newsetl query`` with its output.

Exit status 0 when the DAG run succeeded and published its manifest, 1 otherwise. Running it
again is safe: within the same hour the interval is rewritten from its raw archive (replay); in
a later hour the articles already in the lake are not published again (the seen index).
Nothing leaves 127.0.0.1: the demo's sources name only the local site, a local lake gets dummy
AWS credentials and no instance-metadata lookups, and Airflow's network features are off.

    .venv/bin/python scripts/demo.py [--lake URI] [--port 8765] [--logical-date ISO]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_local import (  # scripts/airflow_local.py (a script's folder is on sys.path)
    DAG_ID,
    ROOT,
    airflow_vars,
    bin_path,
    dags_test,
    new_jwt_secret,
    prepare_home,
    subprocess_env,
)

HOME = ROOT / "airflow_home"
SITE = ROOT / "seeds" / "site"
TEMPLATE = ROOT / "seeds" / "sources.demo.yaml"
DEFAULT_PORT = 8765
SAMPLE_SQL = "SELECT title, published_at, word_count FROM articles"
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"}


def say(text: str = "", end: str = "\n") -> None:
    print(text, end=end, flush=True)


def start_site(port: int, home: Path) -> Any:
    """The seeds site on ``port``, else on the port an earlier run fell back to, else on a new
    free one (remembered in the Airflow home). Article URLs, and so article ids, include the
    port: a stable port keeps later runs from publishing the same pages again under new ids."""
    from etl.devsite import DevSite

    remembered = home / ".site_port"
    ports = [port]
    if remembered.is_file() and remembered.read_text().strip().isdigit():
        ports.append(int(remembered.read_text().strip()))
    for candidate in ports:
        try:
            return DevSite(SITE, port=candidate).start()
        except OSError:  # taken
            continue
    site = DevSite(SITE, port=0).start()
    remembered.write_text(f"{site.server.server_address[1]}\n", encoding="utf-8")
    return site


def write_sources(base: str, home: Path) -> Path:
    text = TEMPLATE.read_text(encoding="utf-8").replace("{{BASE}}", base)
    path = home / "sources.demo.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def jwt_secret(home: Path) -> str:
    """One JWT secret for this Airflow home, kept in it (0600)."""
    path = home / ".jwt_secret"
    if path.is_file() and path.read_text(encoding="utf-8").strip():
        return path.read_text(encoding="utf-8").strip()
    secret = new_jwt_secret()
    path.touch(mode=0o600)
    path.write_text(secret + "\n", encoding="utf-8")
    return secret


def logical_date(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC).replace(microsecond=0)
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)


def lake_uri(value: str | None) -> str:
    uri = value or os.environ.get("NEWSETL_LAKE") or "./lake"
    if "://" in uri:
        return uri
    return str(Path(uri).resolve())  # the DAG runs in another process: give it the full path


def shown(uri: str) -> str:
    """A local lake relative to the current folder when it is inside it."""
    try:
        return "./" + Path(uri).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return uri


def summary(env: dict[str, str], interval: Any, lake_shown: str) -> int:
    """Print what the run published (from its manifest); 1 when there is no manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from etl.config import load_settings
    from etl.lake import open_lake, read_manifest, run_query

    settings = load_settings(env)
    lake = open_lake(settings.lake_settings)
    manifest = read_manifest(lake, interval)
    if manifest is None:
        say(f"error: the run left no manifest _runs/{interval.id}.json in {lake_shown}")
        return 1
    extra = manifest.get("extra") or {}
    start, end = interval.start, interval.end
    say()
    say(f"Interval   {start:%Y-%m-%d %H:%M} → {end:%H:%M} UTC   ({interval.id})")
    say(f"Lake       {lake_shown}   manifest _runs/{interval.id}.json")
    for sid, p in sorted((extra.get("sources") or {}).items()):
        mode = p.get("mode")
        how = {
            "fetch": f"{p.get('count', 0)} listed for the hour, {p.get('pages', 0)} fetched",
            "replay": "replayed its raw archive of this hour (no fetches)",
            "warc": "read from its WARC file",
        }.get(mode, f"mode {mode}")
        say(f"  {sid:<16} {how}: {p.get('rows', 0)} articles, {p.get('failed', 0)} failed")
    dd = extra.get("dedupe") or {}
    say(
        f"Published  {manifest['articles']} articles in {len(manifest['shards'])} file(s); "
        f"{extra.get('urls_tried', '-')} URLs in fetch_log; dedupe {dd.get('rows_in', '-')} in → "
        f"{dd.get('rows_out', '-')} out ({dd.get('duplicate_id', 0)} found by several sources, "
        f"{dd.get('seen', 0)} already in the lake)"
    )
    hits = extra.get("rule_hits") or {}
    if hits:
        say("Rule hits  " + ", ".join(f"{rule} ×{n}" for rule, n in hits.items()))
    titles: list[str] = []
    for shard in manifest["shards"]:
        table = pq.read_table(pa.BufferReader(lake.get_bytes(shard["key"])), columns=["title"])
        titles += [str(t) for t in table.column("title").to_pylist() if t]
    for i, title in enumerate(sorted(titles)[:5]):
        say(("Titles     " if i == 0 else "           ") + f"• {title}")
    if manifest["articles"] == 0:
        say("           (nothing new this hour: the site's articles are already in the lake)")
    _, rows = run_query(
        settings.lake_settings,
        "SELECT count(*), count(DISTINCT article_id), count(DISTINCT dt) FROM articles",
    )
    n, distinct, days = rows[0]
    say(f"Lake total {n} articles, {distinct} distinct ids, {days} dt partition(s)")
    say()
    flag = "" if lake_shown == "./lake" else f" --lake {lake_shown}"
    say(f'Sample query:  .venv/bin/newsetl query{flag} "{SAMPLE_SQL}"')
    query = subprocess.run(
        [bin_path("newsetl"), "query", SAMPLE_SQL],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    for line in (query.stdout + query.stderr).rstrip("\n").splitlines():
        say("  " + line)
    return 0 if query.returncode == 0 else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", help="lake URI (default: $NEWSETL_LAKE or ./lake)")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help="site port on 127.0.0.1")
    ap.add_argument("--logical-date", help="ISO time; the run covers the last hour before it")
    ap.add_argument("--home", type=Path, default=HOME, help="Airflow home (default: %(default)s)")
    args = ap.parse_args(argv)

    from importlib.metadata import version

    from etl.records import Interval

    home: Path = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    lake = lake_uri(args.lake)
    when = logical_date(args.logical_date)
    interval = Interval.last_complete_hour(when)  # what the hourly timetable infers from `when`
    say(f"newsetl demo: {DAG_ID} through Apache Airflow {version('apache-airflow-core')}")
    site = start_site(args.port, home)
    try:
        say(f"Site       seeds/site served at {site.base}")
        sources = write_sources(site.base, home)
        extra = {"NEWSETL_SOURCES": str(sources), "NEWSETL_LAKE": lake}
        env = subprocess_env(airflow_vars(home, jwt_secret=jwt_secret(home)), extra)
        has_keys = env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE")
        if not lake.lower().startswith("s3://") and not has_keys:
            env.update(DUMMY_AWS)  # a local lake: nothing may go looking for AWS credentials
        say(f"Sources    {shown(str(sources))} (from seeds/{TEMPLATE.name})")
        say(f"Airflow    home {shown(str(home))}/ (SQLite) ...", end="")
        try:
            done = prepare_home(home, env)
        except RuntimeError as exc:  # the failing command and the tail of its output
            say(f"\nerror: {exc}")
            return 1
        say(" " + (", ".join(done) + ": done" if done else "ready (already migrated)"))
        log = home / "logs" / f"demo-{interval.id}.log"
        say(
            f"Running    airflow dags test {DAG_ID} {when.isoformat()}  →  interval "
            f"[{interval.start:%H:%M}, {interval.end:%H:%M}) UTC; log {shown(str(log))}"
        )
        say("  tasks:", end="")
        result = dags_test(env, when, log=log, on_task=lambda name: say(f" {name}", end=""))
        say()
    finally:
        site.close()
    if not result.ok:
        state = result.state or "without a final state"
        say(f"\nerror: the DAG run ended {state} (exit {result.returncode}); log {shown(str(log))}")
        for line in result.errors()[:5] or result.tail(30).splitlines():
            say("  " + line)
        return 1
    say(f"DAG run    success in {result.seconds:.1f} s ({len(result.tasks)} task instances)")
    return summary(env, interval, shown(lake))


if __name__ == "__main__":
    sys.exit(main())
