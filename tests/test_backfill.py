"""Backfills under a real Airflow scheduler, and a publish killed half-way.

A small news site on 127.0.0.1 lists six articles in a Google News sitemap, two per hour on
2024-03-05 (10:xx, 11:xx, 12:xx UTC). ``airflow standalone`` (scheduler, dag-processor,
api-server, triggerer; SQLite, LocalExecutor) runs ``airflow backfill create`` over those three
hours into a local lake; a second backfill with ``--reprocess-behavior completed`` must replay
the raw archive and leave the lake exactly as it was. The first test (no scheduler needed,
it runs before standalone starts) kills ``etl.runner.publish_step`` (SIGKILL, in a subprocess)
between its puts and its stale-object deletes and checks that a normal rerun repairs the
interval.

Airflow runs only in subprocesses (its import warnings never reach this process).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from sites import Site, serve_directory

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DAG_ID = "news_ingest"
DAY = "2024-03-05"
HOURS = (10, 11, 12)
SOURCE_ID = "backfill-news"

# Hard limits: a hung scheduler fails the test instead of hanging CI.
START_TIMEOUT_S = 120.0
BACKFILL_TIMEOUT_S = 180.0
CLI_TIMEOUT_S = 90.0


# -- the site ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Story:
    slug: str
    published: datetime
    title: str
    author: str
    section: str
    paragraphs: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"/news/2024/03/05/{self.slug}/"


def _at(hour: int, minute: int) -> datetime:
    return datetime(2024, 3, 5, hour, minute, tzinfo=UTC)


STORIES = (
    Story(
        "harbour-ferry-late-sailings",
        _at(10, 5),
        "Harbour ferry adds late-night sailings for the summer season",
        "Maya Okafor",
        "Local",
        (
            "The harbour ferry will run two extra crossings after eleven o'clock every night "
            "from June to September, the regional transit authority said on Tuesday, after a "
            "pilot last summer drew more riders than planners had forecast.",
            "Crews on the Dartmouth route voted to accept the longer shifts in exchange for an "
            "additional paid day off each month, according to their union local, which had "
            "opposed the pilot when it was first proposed.",
            "Restaurant owners along the waterfront welcomed the change. Several said late "
            "diners had been leaving early to catch the last boat, cutting evening sales by as "
            "much as a fifth on busy weekends.",
        ),
    ),
    Story(
        "library-weekend-hours",
        _at(10, 40),
        "City library extends weekend hours at six neighbourhood branches",
        "Daniel Brisebois",
        "Local",
        (
            "Six neighbourhood library branches will open on Sunday mornings starting next "
            "month, the library board decided at a meeting that ran past midnight, reversing "
            "cuts made during the pandemic.",
            "The board's chair said card holders had asked for longer hours in every survey "
            "since 2021, and that children's reading programs in particular had outgrown the "
            "Saturday slots they were squeezed into.",
            "The extra hours will cost roughly $410,000 a year, money the board plans to find "
            "by closing the central branch's rarely used microfilm room and leasing the space "
            "to a community college.",
        ),
    ),
    Story(
        "transit-fare-freeze",
        _at(11, 10),
        "Transit board votes to freeze bus and subway fares for another year",
        "Priya Raman",
        "Politics",
        (
            "Bus and subway fares will stay at $3.35 for adults through next March after the "
            "transit commission voted eight to three to extend a freeze first introduced when "
            "ridership collapsed four years ago.",
            "Commissioners who opposed the motion warned that the agency's operating deficit "
            "would widen to nearly $90 million and said the province should be asked to cover "
            "the gap before any vote was taken.",
            "Riders' advocates called the freeze overdue relief for shift workers and students, "
            "who they said have absorbed steep rent increases and cannot easily switch to "
            "driving.",
        ),
    ),
    Story(
        "school-roof-repairs",
        _at(11, 45),
        "School board approves emergency roof repairs at four elementary schools",
        "Gabriel Lindqvist",
        "Education",
        (
            "Leaking roofs at four elementary schools will be patched over the March break "
            "under an emergency contract the public school board approved without the usual "
            "tender, citing water damage in classrooms and a gymnasium.",
            "Facilities staff told trustees that buckets had been set out in hallways for most "
            "of February and that one kindergarten class had moved into the library after "
            "ceiling tiles fell overnight.",
            "Parents at one of the schools said they had raised the problem for three winters "
            "running. The board promised a full inventory of roof conditions across the "
            "district by the end of June.",
        ),
    ),
    Story(
        "farmers-market-rail-yard",
        _at(12, 15),
        "Farmers' market to move into the restored rail yard sheds",
        "Hélène Tremblay",
        "Business",
        (
            "The downtown farmers' market will leave the parking garage it has occupied since "
            "2009 and move into two restored locomotive sheds at the old rail yard when the "
            "outdoor season opens in May.",
            "Vendors have complained for years about low ceilings, exhaust fumes and the steep "
            "ramp they haul produce up each Saturday; the heritage sheds offer loading docks, "
            "skylights and room for sixty more stalls.",
            "Heritage planners required that the original timber trusses stay exposed and that "
            "any new walls be removable, conditions the market's cooperative said it was happy "
            "to accept.",
        ),
    ),
    Story(
        "bridge-lane-closures",
        _at(12, 50),
        "Lane closures on the river bridge will last until the end of April",
        "Tomasz Wielgus",
        "Traffic",
        (
            "Drivers crossing the river bridge should expect a single lane in each direction "
            "until the end of April while crews replace corroded expansion joints, the city's "
            "engineering department said.",
            "The work was scheduled to finish last autumn, but inspectors found more rust under "
            "the deck than the original survey showed, and replacement steel took eleven weeks "
            "to arrive from the fabricator.",
            "Cyclists keep their protected lane throughout. Commuters are encouraged to use the "
            "upstream crossing or the express bus, which gets a temporary priority signal at "
            "the bridge approach.",
        ),
    ),
)


def _stories_in(hour: int) -> list[Story]:
    return [s for s in STORIES if s.published.hour == hour]


_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} - Harbour City Herald</title>
  <link rel="canonical" href="{{{{BASE}}}}{path}">
  <meta name="description" content="{lead}">
  <meta property="og:title" content="{title}">
  <meta property="og:type" content="article">
  <meta property="og:site_name" content="Harbour City Herald">
  <meta property="article:published_time" content="{published}">
  <meta property="article:section" content="{section}">
  <script type="application/ld+json">{ld}</script>
  <link rel="stylesheet" href="/static/site.css">
</head>
<body>
  <div class="promo-banner">Subscribe today: unlimited digital access for $1 a week.</div>
  <header class="masthead">
    <a href="/"><img src="/static/logo.svg" alt="Harbour City Herald"></a>
    <nav><ul>
      <li><a href="/">Home</a></li><li><a href="/local/">Local</a></li>
      <li><a href="/politics/">Politics</a></li><li><a href="/business/">Business</a></li>
      <li><a href="/sports/">Sports</a></li><li><a href="/opinion/">Opinion</a></li>
    </ul></nav>
  </header>
  <main>
    <article class="story">
      <h1>{title}</h1>
      <p class="byline">By <span class="author">{author}</span>,
        <time datetime="{published}">March 5, 2024</time></p>
      <div class="story-body">
{body}
      </div>
      <div class="share-tools">Share this article: <a href="#">Facebook</a>
        <a href="#">X</a> <a href="#">Email</a></div>
    </article>
    <aside class="related">
      <h3>Most read</h3>
      <ol>
        <li><a href="/local/2024/03/04/snow-clearing-budget/">Snow clearing budget runs dry</a></li>
        <li><a href="/sports/2024/03/04/hockey-playoff-race/">Playoff race tightens</a></li>
      </ol>
      <div class="newsletter">Get the morning briefing in your inbox.
        <form><input type="email" placeholder="Email address"><button>Sign up</button></form>
      </div>
    </aside>
  </main>
  <footer class="site-footer">
    <p>Copyright © 2024 Harbour City Herald. All rights reserved.
      <a href="/privacy/">Privacy</a> <a href="/terms/">Terms of use</a></p>
  </footer>
</body>
</html>
"""

# In-body boilerplate the clean stage removes (rules newsletter-signup, share-prompt).
_NEWSLETTER = "Sign up for our Morning Briefing newsletter to get the day's top stories."
_SHARE = "Share this story:"

_SITEMAP_ENTRY = """\
  <url>
    <loc>{{{{BASE}}}}{path}</loc>
    <lastmod>{lastmod}</lastmod>
    <news:news>
      <news:publication>
        <news:name>Harbour City Herald</news:name>
        <news:language>en</news:language>
      </news:publication>
      <news:publication_date>{published}</news:publication_date>
      <news:title>{title}</news:title>
    </news:news>
  </url>
"""


def build_site(root: Path) -> None:
    """Write the site: robots.txt, a Google News sitemap and one page per story."""
    from html import escape

    root.mkdir(parents=True, exist_ok=True)
    (root / "robots.txt").write_text(
        "User-agent: *\nDisallow: /search/\n\nSitemap: {{BASE}}/news-sitemap.xml\n"
    )
    entries = []
    for s in STORIES:
        published = s.published.isoformat()
        ld = json.dumps(
            {
                "@context": "https://schema.org",
                "@type": "NewsArticle",
                "headline": s.title,
                "datePublished": published,
                "author": {"@type": "Person", "name": s.author},
                "articleSection": s.section,
                "publisher": {"@type": "NewsMediaOrganization", "name": "Harbour City Herald"},
            },
            ensure_ascii=False,
        )
        paragraphs = [*s.paragraphs[:2], _NEWSLETTER, *s.paragraphs[2:], _SHARE]
        body = "\n".join(f"        <p>{escape(p)}</p>" for p in paragraphs)
        page = _PAGE.format(
            title=escape(s.title),
            path=s.path,
            lead=escape(s.paragraphs[0][:150], quote=True),
            published=published,
            section=s.section,
            ld=ld,
            author=escape(s.author),
            body=body,
        )
        folder = root / s.path.strip("/")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index.html").write_text(page, encoding="utf-8")
        entries.append(
            _SITEMAP_ENTRY.format(
                path=s.path,
                lastmod=(s.published + timedelta(minutes=20)).isoformat(),
                published=published,
                title=escape(s.title),
            )
        )
    (root / "news-sitemap.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"\n'
        '        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n'
        + "".join(entries)
        + "</urlset>\n",
        encoding="utf-8",
    )


def write_sources(path: Path, base: str) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            sources:
              - id: {SOURCE_ID}
                kind: sitemap
                url: {base}/news-sitemap.xml
                per_host_delay_s: 0.05
                language: en
            allow_private_addresses: true
            user_agent: "newsetl-test/1 (+https://example.org/newsetl-tests)"
            fetch:
              connect_timeout_s: 5
              read_timeout_s: 10
              max_attempts: 2
              backoff_base_s: 0.1
            """
        ),
        encoding="utf-8",
    )
    return path


def interval_id(hour: int) -> str:
    return f"20240305T{hour:02d}00Z-20240305T{hour + 1:02d}00Z"


def article_key(hour: int, shard: int = 0) -> str:
    return f"articles/dt={DAY}/{interval_id(hour)}-{shard:03d}.parquet"


def manifest_key(hour: int) -> str:
    return f"_runs/{interval_id(hour)}.json"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    build_site(root)
    s = serve_directory(root)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def sources_file(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sources(tmp_path_factory.mktemp("config") / "sources.yaml", site.base)


def article_requests(site: Site) -> list[str]:
    return [r.path for r in site.requests() if r.path.startswith("/news/")]


# -- reading the lake (plain files: the lake is a local folder) --------------------------------


def lake_files(lake: Path) -> set[str]:
    """Every file under the lake, as keys (temp files and staging included)."""
    return {p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file()}


def read_rows(lake: Path, key: str) -> list[dict[str, Any]]:
    return pq.read_table(lake / key, use_threads=False).to_pylist()


def interval_article_keys(lake: Path, hour: int) -> list[str]:
    prefix = f"articles/dt={DAY}/{interval_id(hour)}-"
    return sorted(k for k in lake_files(lake) if k.startswith(prefix))


def file_ids(lake: Path, key: str) -> list[str]:
    table = pq.read_table(lake / key, columns=["article_id"], use_threads=False)
    ids: list[str] = table.column(0).to_pylist()
    return ids


def all_article_ids(lake: Path) -> list[str]:
    """Article ids of every Parquet file under articles/ (what a glob reader would see)."""
    keys = sorted(k for k in lake_files(lake) if k.startswith("articles/"))
    return [i for k in keys if k.endswith(".parquet") for i in file_ids(lake, k)]


def ids_by_interval(lake: Path) -> dict[int, list[str]]:
    return {
        h: sorted(i for k in interval_article_keys(lake, h) for i in file_ids(lake, k))
        for h in HOURS
    }


def read_manifest(lake: Path, hour: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((lake / manifest_key(hour)).read_text())
    return data


def staged_files(lake: Path) -> set[str]:
    return {k for k in lake_files(lake) if k.startswith("_staging/")}


def temp_files(lake: Path) -> set[str]:
    """Hidden or .tmp files (LocalLake writes ``.<name>.<random>.tmp`` and renames it)."""
    names = {k: k.rsplit("/", 1)[-1] for k in lake_files(lake)}
    return {k for k, n in names.items() if n.startswith(".") or n.endswith(".tmp")}


# -- Airflow standalone ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (task processes move to their own process groups)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[-1].split()
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Airflow:
    """``airflow standalone`` in its own process group, on a free port of 127.0.0.1."""

    def __init__(self, home: Path, lake: Path, sources: Path) -> None:
        self.home, self.lake, self.sources = home, lake, sources
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "standalone.log"
        self.proc: subprocess.Popen[bytes] | None = None
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "NEWSETL_", "AWS_", "PYTEST_"))
        }
        env.update(
            {
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(home),
                "NEWSETL_SOURCES": str(sources),
                "NEWSETL_LAKE": str(lake),
                "NO_COLOR": "1",
                "PYTHONWARNINGS": "ignore",
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "6",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(24).hex(),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
                # Only backfill runs: no scheduled run of the current hour sneaks in.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            }
        )
        self.env = env

    # -- process ---------------------------------------------------------------------------

    def start(self) -> None:
        # SQLite in WAL mode (readers never block the writer) with a long busy timeout: the
        # scheduler, dag-processor, api-server and CLI all write to the one file.
        db = self.home / "airflow.db"
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        (self.home / "newsetl_test_db.py").write_text('connect_args = {"timeout": 60}\n')
        self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{db}"
        self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "newsetl_test_db.connect_args"
        self.env["PYTHONPATH"] = str(self.home)
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "airflow"), "standalone"],
                cwd=self.home,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, torn down as one
            )

    def stop(self) -> None:
        """Stop standalone as Ctrl-C does (it stops and reaps its components), then
        SIGTERM and at last SIGKILL whatever is left of its group and descendants."""
        if self.proc is None:
            return
        pid = self.proc.pid
        tree = set(_descendants(pid))
        if self.proc.poll() is None:
            os.kill(pid, signal.SIGINT)
        for sig, grace in ((None, 30.0), (signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, sig)
                for child in tree:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                tree = {c for c in tree | set(_descendants(pid)) if _alive(c)}
                if self.proc.poll() is not None and not tree:
                    self.proc = None
                    return
                time.sleep(0.2)
        self.proc = None

    # -- talking to it ---------------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no standalone log)"
        return "\n".join(text.splitlines()[-lines:])

    def task_errors(self, limit: int = 3) -> str:
        """The tail of task logs that mention an error (for failure messages)."""
        found = []
        for path in sorted((self.home / "logs").rglob("*.log")):
            text = path.read_text(errors="replace")
            if "error" in text.lower() or "Traceback" in text:
                found.append(f"--- {path.relative_to(self.home)}\n" + text[-3000:])
        return "\n".join(found[-limit:]) or "(no task log mentions an error)"

    def diagnose(self) -> str:
        return (
            f"\n== standalone log (tail) ==\n{self.log_tail()}\n== task logs ==\n"
            f"{self.task_errors()}"
        )

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT_S) -> str:
        """Run ``airflow ARGS`` against this instance; fail with its output on error."""
        try:
            res = subprocess.run(
                [str(VENV_BIN / "airflow"), *args],
                check=False,
                cwd=self.home,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"airflow {' '.join(args)}: no answer in {timeout:.0f}s{self.diagnose()}")
        if res.returncode != 0:
            pytest.fail(
                f"airflow {' '.join(args)} exited {res.returncode}:\n{res.stdout[-3000:]}\n"
                f"{res.stderr[-3000:]}{self.diagnose()}"
            )
        return res.stdout

    def get(self, path: str) -> Any:
        with httpx.Client(base_url=self.base, timeout=10, trust_env=False) as client:
            resp = client.get(path)
            resp.raise_for_status()
            return resp.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        with httpx.Client(base_url=self.base, timeout=10, trust_env=False) as client:
            resp = client.post(path, json=body)
            resp.raise_for_status()
            return resp.json()

    def wait_until_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """api-server answering, every component healthy, the DAG parsed without errors."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"airflow standalone exited {self.proc.returncode}{self.diagnose()}")
            try:
                health = self.get("/api/v2/monitor/health")
                last = health
                if all(
                    health.get(c, {}).get("status") == "healthy"
                    for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                ):
                    errors = self.get("/api/v2/importErrors")
                    if errors.get("total_entries"):
                        pytest.fail(f"DAG import errors: {errors}")
                    dag = self.get(f"/api/v2/dags/{DAG_ID}")
                    if dag.get("dag_id") == DAG_ID:
                        return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(1)
        pytest.fail(f"airflow not ready after {timeout:.0f}s (last: {last}){self.diagnose()}")

    def runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.get(f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")[
            "dag_runs"
        ]
        return runs

    def backfill(self, *extra: str, since: datetime) -> list[dict[str, Any]]:
        """``airflow backfill create`` over 10:00..12:00; wait for three runs started after
        ``since`` to succeed (failing fast on a failed run, or after BACKFILL_TIMEOUT_S)."""
        self.wait_backfills_completed()  # there can be only one running backfill per DAG
        self.cli(
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            f"{DAY}T10:00:00+00:00",
            "--to-date",
            f"{DAY}T12:00:00+00:00",
            *extra,
        )
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        mine: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            mine = [
                r
                for r in self.runs()
                if r["run_type"] == "backfill"
                and r.get("start_date")
                and datetime.fromisoformat(r["start_date"]) >= since
            ]
            failed = [r["dag_run_id"] for r in mine if r["state"] == "failed"]
            if failed:
                pytest.fail(f"backfill runs failed: {failed}{self.diagnose()}")
            if len(mine) >= len(HOURS) and all(r["state"] == "success" for r in mine):
                return sorted(mine, key=lambda r: r["data_interval_start"])
            time.sleep(2)
        states = {r["dag_run_id"]: r["state"] for r in mine}
        pytest.fail(f"backfill not done in {BACKFILL_TIMEOUT_S:.0f}s: {states}{self.diagnose()}")

    def wait_backfills_completed(self) -> None:
        """The scheduler marks a backfill completed up to 30 s after its last run ends."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            backfills = self.get(f"/api/v2/backfills?dag_id={DAG_ID}")["backfills"]
            if all(b.get("completed_at") for b in backfills):
                return
            time.sleep(1)
        pytest.fail(f"backfills not marked completed: {backfills}{self.diagnose()}")

    def list_runs(self) -> list[dict[str, Any]]:
        """``airflow dags list-runs -o json`` (the CLI's view of the same runs)."""
        out = self.cli("dags", "list-runs", DAG_ID, "-o", "json")
        line = next(ln for ln in reversed(out.splitlines()) if ln.startswith("["))
        runs: list[dict[str, Any]] = json.loads(line)
        return runs


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory, sources_file: Path) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow_home")
    lake = tmp_path_factory.mktemp("lake")
    af = Airflow(home, lake, sources_file)
    atexit.register(af.stop)  # in case the session dies before the finalizer runs
    af.start()
    try:
        af.wait_until_ready()
        af.post(
            "/api/v2/pools",
            {"name": "news_http", "slots": 4, "description": "politeness: HTTP fetches"},
        )
        af.cli("dags", "unpause", DAG_ID)
        yield af
    finally:
        af.stop()
        atexit.unregister(af.stop)


@dataclass(frozen=True)
class Snapshot:
    keys: set[str]
    ids: dict[int, list[str]]
    manifests: dict[int, dict[str, Any]]
    article_requests: list[str]
    requests: int


def snapshot(lake: Path, site: Site) -> Snapshot:
    return Snapshot(
        keys=lake_files(lake),
        ids=ids_by_interval(lake),
        manifests={h: read_manifest(lake, h) for h in HOURS},
        article_requests=article_requests(site),
        requests=len(site.requests()),
    )


@pytest.fixture(scope="module")
def first_backfill(airflow: Airflow, site: Site) -> tuple[list[dict[str, Any]], Snapshot]:
    """The first backfill over 10:00..12:00 (fetching from the site)."""
    runs = airflow.backfill(since=datetime.now(UTC) - timedelta(seconds=1))
    return runs, snapshot(airflow.lake, site)


# -- 1. a publish killed between its puts and its stale deletes --------------------------------

# Runs one interval's steps (as the DAG's tasks do) with a given shard count. With
# ``kill-before-delete``, the first lake.delete of the publish (the stale objects, which comes
# after every put and before the manifest) reports what was put and SIGKILLs the process.
_PUBLISH_WRAPPER = """\
import json, os, signal, sys
from dataclasses import replace
from datetime import datetime

from etl.config import load_settings
from etl.lake import LocalLake
from etl.records import Interval
from etl.runner import (
    Run, discover_step, fetch_step, plan, process_step, publish_step, validate_step,
)

lake, sources, start, end, n_shards, mode = sys.argv[1:7]
settings = replace(load_settings(lake=lake, sources=sources), n_shards=int(n_shards))
interval = Interval(datetime.fromisoformat(start), datetime.fromisoformat(end))
run = Run.open(settings, interval)
assert isinstance(run.lake, LocalLake), run.lake
processed = [process_step(run, fetch_step(run, discover_step(run, s))) for s in plan(run)]
if mode == "kill-before-delete":
    puts = []
    put_file, put_bytes = LocalLake.put_file, LocalLake.put_bytes

    def recording_put_file(self, key, path):
        put_file(self, key, path)
        puts.append(key)

    def recording_put_bytes(self, key, data):
        put_bytes(self, key, data)
        puts.append(key)

    def killing_delete(self, keys):
        print(json.dumps({"puts": puts, "deleting": list(keys)}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    LocalLake.put_file, LocalLake.put_bytes = recording_put_file, recording_put_bytes
    LocalLake.delete = killing_delete
published = publish_step(run, processed)
print(json.dumps({"published": published, "quality": validate_step(run)}), flush=True)
"""


def run_publish(
    tmp: Path, lake: Path, sources: Path, hour: int, n_shards: int, mode: str = "normal"
) -> subprocess.CompletedProcess[str]:
    script = tmp / "publish_wrapper.py"
    script.write_text(_PUBLISH_WRAPPER)
    scratch = tmp / "scratch"  # the subprocess's TMPDIR: a SIGKILL leaves its temp folder here
    scratch.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSETL_", "AWS_"))}
    env["TMPDIR"] = str(scratch)
    start = _at(hour, 0)
    return subprocess.run(
        [
            sys.executable,
            str(script),
            str(lake),
            str(sources),
            start.isoformat(),
            (start + timedelta(hours=1)).isoformat(),
            str(n_shards),
            mode,
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=120,
    )


def _last_json(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no report (exit {res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def _ok(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert res.returncode == 0, f"exit {res.returncode}:\n{res.stderr[-4000:]}"
    return _last_json(res)


@pytest.mark.timeout(240)
def test_publish_killed_between_puts_and_stale_deletes_is_repaired_by_a_rerun(
    tmp_path: Path,
) -> None:
    from etl.store import shard_of

    root = tmp_path / "site"
    build_site(root)
    site = serve_directory(root)
    try:
        sources = write_sources(tmp_path / "sources.yaml", site.base)
        lake, hour = tmp_path / "lake", 11
        wanted = sorted(site.url(s.path) for s in _stories_in(hour))

        # Fetch and publish the interval once; then again (a replay) with a shard count that
        # puts its two articles in two files.
        _ok(run_publish(tmp_path, lake, sources, hour, n_shards=1))
        ids = ids_by_interval(lake)[hour]
        assert len(ids) == len(wanted) == 2
        n = next(n for n in range(2, 100) if len({shard_of(i, n) for i in ids}) == len(ids))
        _ok(run_publish(tmp_path, lake, sources, hour, n_shards=n))
        published = interval_article_keys(lake, hour)
        assert published == sorted(article_key(hour, shard_of(i, n)) for i in ids)
        assert [s["key"] for s in read_manifest(lake, hour)["shards"]] == published
        manifest_before = (lake / manifest_key(hour)).read_bytes()
        stale = sorted(set(published) - {article_key(hour)})
        assert stale

        # Back to one shard, killed right after its puts, before any stale delete.
        killed = run_publish(tmp_path, lake, sources, hour, n_shards=1, mode="kill-before-delete")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
        report = _last_json(killed)
        assert article_key(hour) in report["puts"]
        assert f"fetch_log/dt={DAY}/{interval_id(hour)}.parquet" in report["puts"]
        assert manifest_key(hour) not in report["puts"]
        assert sorted(report["deleting"]) == stale

        # The killed state: every file whole, the old manifest still in place (listing files
        # that exist), the new file next to the stale one(s), the staging not yet cleaned.
        for key in sorted(lake_files(lake)):
            if key.endswith(".parquet"):
                pq.read_table(lake / key, use_threads=False)  # raises on a partial file
        assert not temp_files(lake)
        assert (lake / manifest_key(hour)).read_bytes() == manifest_before
        assert interval_article_keys(lake, hour) == sorted({article_key(hour), *stale})
        assert sorted(file_ids(lake, article_key(hour))) == ids
        assert len(ids_by_interval(lake)[hour]) > len(ids)  # a glob reader sees both copies
        killed_staging = staged_files(lake)
        assert killed_staging

        # A normal rerun repairs the interval.
        out = _ok(run_publish(tmp_path, lake, sources, hour, n_shards=1))
        assert interval_article_keys(lake, hour) == [article_key(hour)]
        manifest = read_manifest(lake, hour)
        assert [s["key"] for s in manifest["shards"]] == [article_key(hour)]
        assert manifest["articles"] == len(ids)
        assert sorted(manifest["deleted"]) == stale
        assert sorted(out["published"]["deleted"]) == stale
        assert ids_by_interval(lake)[hour] == ids
        rows = read_rows(lake, article_key(hour))
        assert sorted(r["url"] for r in rows) == wanted
        everything = all_article_ids(lake)
        assert len(everything) == len(set(everything)) == len(ids)
        assert out["quality"]["duplicate_rate"] == 0.0
        assert not temp_files(lake)
        # the rerun (another attempt) removed its own staging and never read the killed
        # attempt's; removing those leftovers is the interval lease's cleanup (issue 7, h2)
        assert staged_files(lake) <= killed_staging
        # Nor outside it: the publish had removed its local temp folder before the kill.
        assert not list((tmp_path / "scratch").iterdir())
        # The raw archive was replayed: the articles were fetched by the first run only.
        assert sorted(article_requests(site)) == sorted(s.path for s in _stories_in(hour))
    finally:
        site.close()


# -- 2. a backfill under the scheduler ---------------------------------------------------------


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


@pytest.mark.timeout(480)
def test_backfill_publishes_each_hour_once(
    airflow: Airflow, site: Site, first_backfill: tuple[list[dict[str, Any]], Snapshot]
) -> None:
    runs, snap = first_backfill
    lake = airflow.lake

    # --to-date is inclusive: 10:00..12:00 gives exactly the hours 10-11, 11-12 and 12-13.
    assert [(_when(r["data_interval_start"]), _when(r["data_interval_end"])) for r in runs] == [
        (_at(h, 0), _at(h, 0) + timedelta(hours=1)) for h in HOURS
    ]
    assert [_when(r["logical_date"]) for r in runs] == [_at(h, 0) for h in HOURS]
    listed = airflow.list_runs()
    assert sorted((_when(r["logical_date"]), r["state"]) for r in listed) == [
        (_at(h, 0), "success") for h in HOURS
    ]

    # One article file and one manifest per interval, nothing else under articles/ or _runs/.
    assert sorted(k for k in snap.keys if k.startswith("articles/")) == [
        article_key(h) for h in HOURS
    ]
    assert sorted(k for k in snap.keys if k.startswith("_runs/")) == [
        manifest_key(h) for h in HOURS
    ]
    by_url = {site.url(s.path): s for s in STORIES}
    for h in HOURS:
        m = snap.manifests[h]
        start, end = _at(h, 0), _at(h, 0) + timedelta(hours=1)
        assert (m["interval"], _when(m["start"]), _when(m["end"])) == (interval_id(h), start, end)
        assert [s["key"] for s in m["shards"]] == [article_key(h)]
        assert m["extra"]["sources"][SOURCE_ID]["mode"] == "fetch"
        assert f"fetch_log/dt={DAY}/{interval_id(h)}.parquet" in snap.keys
        assert f"raw/dt={DAY}/source={SOURCE_ID}/{interval_id(h)}.warc.gz" in snap.keys
        rows = read_rows(lake, article_key(h))
        assert m["articles"] == len(rows)
        assert sorted(r["url"] for r in rows) == sorted(site.url(s.path) for s in _stories_in(h))
        for r in rows:
            story = by_url[r["url"]]
            assert start <= r["published_at"] < end
            assert r["published_at"] == story.published
            assert (r["title"], r["authors"], r["dt"]) == (story.title, [story.author], DAY)
            assert all(p in r["text"] for p in story.paragraphs)
            assert _NEWSLETTER not in r["text"] and _SHARE not in r["text"]
            assert {b["rule"] for b in r["boilerplate_removed"]} >= {
                "newsletter-signup",
                "share-prompt",
            }
    ids = all_article_ids(lake)
    assert len(ids) == len(set(ids)) == len(STORIES)
    assert not staged_files(lake)
    assert not temp_files(lake)
    assert sorted(snap.article_requests) == sorted(s.path for s in STORIES)  # each fetched once


# -- 3. the same backfill again, reprocessing completed runs -----------------------------------


@pytest.mark.timeout(360)
def test_reprocessing_backfill_replays_the_archive_and_changes_nothing(
    airflow: Airflow, site: Site, first_backfill: tuple[list[dict[str, Any]], Snapshot]
) -> None:
    _, before = first_backfill
    lake = airflow.lake
    since = datetime.now(UTC) - timedelta(seconds=1)
    runs = airflow.backfill("--reprocess-behavior", "completed", since=since)
    after = snapshot(lake, site)

    assert [_when(r["data_interval_start"]) for r in runs] == [_at(h, 0) for h in HOURS]
    for h in HOURS:  # every interval was published again, from its raw archive
        m = after.manifests[h]
        assert _when(m["started_at"]) >= since
        assert m["extra"]["sources"][SOURCE_ID]["mode"] == "replay"
        assert m["deleted"] == []
        assert [(s["key"], s["rows"]) for s in m["shards"]] == [
            (s["key"], s["rows"]) for s in before.manifests[h]["shards"]
        ]
        assert m["articles"] == before.manifests[h]["articles"]
    assert after.ids == before.ids
    assert after.keys == before.keys  # no stale object, nothing new
    ids = all_article_ids(lake)
    assert len(ids) == len(set(ids)) == len(STORIES)
    assert not staged_files(lake)
    assert not temp_files(lake)
    assert after.article_requests == before.article_requests  # no article fetched again
    assert after.requests == before.requests  # no request at all: a replay
